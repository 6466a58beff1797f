//! Kubeconfig files: how kubectl and the components find the apiserver and present their credentials.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

/// Renders a kubeconfig with one cluster, one user and one context (`<user>@<cluster>`, current),
/// the PEMs embedded as base64 `*-data` fields so the file stands alone and kubectl reads it as is.
pub fn kubeconfig(
    server: &str,
    cluster_name: &str,
    user_name: &str,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> String {
    let context_name = format!("{user_name}@{cluster_name}");
    let config = Config {
        api_version: "v1".to_owned(),
        kind: "Config".to_owned(),
        clusters: vec![NamedCluster {
            name: cluster_name.to_owned(),
            cluster: Cluster { server: server.to_owned(), certificate_authority_data: STANDARD.encode(ca_pem) },
        }],
        users: vec![NamedUser {
            name: user_name.to_owned(),
            user: User {
                client_certificate_data: STANDARD.encode(cert_pem),
                client_key_data: STANDARD.encode(key_pem),
            },
        }],
        contexts: vec![NamedContext {
            name: context_name.clone(),
            context: Context { cluster: cluster_name.to_owned(), user: user_name.to_owned() },
        }],
        current_context: context_name,
    };
    serde_yaml_ng::to_string(&config).expect("a struct of strings always serializes to YAML")
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    pub(crate) api_version: String,
    pub(crate) kind: String,
    pub(crate) clusters: Vec<NamedCluster>,
    pub(crate) users: Vec<NamedUser>,
    pub(crate) contexts: Vec<NamedContext>,
    #[serde(rename = "current-context")]
    pub(crate) current_context: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct NamedCluster {
    pub(crate) name: String,
    pub(crate) cluster: Cluster,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct Cluster {
    pub(crate) server: String,
    pub(crate) certificate_authority_data: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct NamedUser {
    pub(crate) name: String,
    pub(crate) user: User,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct User {
    pub(crate) client_certificate_data: String,
    pub(crate) client_key_data: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct NamedContext {
    pub(crate) name: String,
    pub(crate) context: Context,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Context {
    pub(crate) cluster: String,
    pub(crate) user: String,
}

/// Decodes one base64 `*-data` field back to the PEM it embeds.
#[cfg(test)]
pub(crate) fn decode(data: &str) -> String {
    String::from_utf8(STANDARD.decode(data).expect("valid base64")).expect("PEM is UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_standard_kubeconfig_layout() {
        let yaml = kubeconfig("https://10.0.0.1:6443", "kubernetes", "jane", "CA", "CERT", "KEY");
        let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml).expect("YAML");
        assert_eq!(value["apiVersion"], "v1");
        assert_eq!(value["kind"], "Config");
        assert_eq!(value["current-context"], "jane@kubernetes");
        assert_eq!(value["contexts"][0]["name"], "jane@kubernetes");
        assert_eq!(value["contexts"][0]["context"]["cluster"], "kubernetes");
        assert_eq!(value["contexts"][0]["context"]["user"], "jane");
        assert_eq!(value["clusters"][0]["name"], "kubernetes");
        assert_eq!(value["clusters"][0]["cluster"]["server"], "https://10.0.0.1:6443");
        assert_eq!(value["users"][0]["name"], "jane");
        let user = &value["users"][0]["user"];
        assert_eq!(decode(user["client-certificate-data"].as_str().expect("string")), "CERT");
        assert_eq!(decode(user["client-key-data"].as_str().expect("string")), "KEY");
        assert_eq!(
            decode(value["clusters"][0]["cluster"]["certificate-authority-data"].as_str().expect("string")),
            "CA"
        );
    }
}
