//! Query parameters of REST requests, read as kube-apiserver reads them.

use rkube_api::{ApiError, Result};

/// The decoded query string of one request.
#[derive(Debug, Default, Clone)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Decodes a raw query string (`a=1&b=x%20y`).
    pub fn parse(raw: &str) -> Query {
        Query { pairs: form_urlencoded::parse(raw.as_bytes()).into_owned().collect() }
    }

    /// The last value of `name` ("" when absent).
    pub fn get(&self, name: &str) -> &str {
        self.pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or_default()
    }

    /// Every value of `name`, in order (`command=ls&command=-l`).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }

    /// A boolean parameter, parsed like Go's `strconv.ParseBool` (what
    /// kube-apiserver does: `true`, `True`, `1`, `t`…); absent is false.
    pub fn flag(&self, name: &str) -> Result<bool> {
        match self.get(name) {
            "" => Ok(false),
            v => parse_bool(v).ok_or_else(|| {
                ApiError::bad_request(format!("query parameter {name}: invalid boolean \"{v}\": use true or false"))
            }),
        }
    }

    /// An integer parameter; absent is None.
    pub fn int(&self, name: &str) -> Result<Option<i64>> {
        match self.get(name) {
            "" => Ok(None),
            v => v
                .parse::<i64>()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("query parameter {name}: invalid integer \"{v}\""))),
        }
    }

    /// `dryRun`: only `All` is defined.
    pub fn dry_run(&self) -> Result<bool> {
        dry_run(&self.all("dryRun"))
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Reads `dryRun` values: empty means a real request, `All` a dry run.
pub fn dry_run(values: &[String]) -> Result<bool> {
    let mut dry = false;
    for v in values.iter().filter(|v| !v.is_empty()) {
        if v != "All" {
            return Err(ApiError::invalid(
                "DeleteOptions",
                "",
                vec![rkube_api::Cause {
                    kind: "FieldValueNotSupported".into(),
                    field: "dryRun".into(),
                    message: format!("Unsupported value: \"{v}\": supported values: \"All\""),
                }],
            ));
        }
        dry = true;
    }
    Ok(dry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_parse_like_go_including_pythons_capitalised_true() {
        let q = Query::parse("watch=True&follow=1&previous=false&bad=yes");
        assert!(q.flag("watch").unwrap());
        assert!(q.flag("follow").unwrap());
        assert!(!q.flag("previous").unwrap());
        assert!(!q.flag("absent").unwrap());
        let e = q.flag("bad").unwrap_err();
        assert!(e.message.contains("bad") && e.message.contains("yes"), "{}", e.message);
    }

    #[test]
    fn values_are_percent_decoded_and_repeated_names_kept_in_order() {
        let q = Query::parse("labelSelector=app%3Dweb%2Ctier+in+(a)&command=ls&command=-l");
        assert_eq!(q.get("labelSelector"), "app=web,tier in (a)");
        assert_eq!(q.all("command"), vec!["ls", "-l"]);
    }

    #[test]
    fn integers_and_dry_run_refuse_what_they_cannot_read() {
        let q = Query::parse("limit=500&timeoutSeconds=x&dryRun=All");
        assert_eq!(q.int("limit").unwrap(), Some(500));
        assert!(q.int("timeoutSeconds").unwrap_err().message.contains("timeoutSeconds"));
        assert!(q.dry_run().unwrap());
        let e = Query::parse("dryRun=Some").dry_run().unwrap_err();
        assert_eq!(e.code(), 422);
    }
}
