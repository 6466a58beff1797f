//! The error the workload controllers' reconciles return.

use rkube_client::controller::ReconcileError;
use rkube_client::{ApiError, ObjectKey, Reason};

/// Why reconciling an object failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object's selector cannot be used (the apiserver validates
    /// selectors, so only an object stored some other way gets here). Not
    /// retried until the object changes.
    #[error("{key}: {message}")]
    InvalidSelector {
        /// The object.
        key: ObjectKey,
        /// What is wrong.
        message: String,
    },
    /// The apiserver refused or failed a read or write. Retried with back-off.
    #[error("{key}: {action}: {source}")]
    Api {
        /// The object being reconciled.
        key: ObjectKey,
        /// What was being done (`creating pods`, `updating status`).
        action: String,
        /// The apiserver's answer.
        #[source]
        source: ApiError,
    },
}

impl Error {
    /// Wraps an apiserver error met while doing `action` for `key`.
    pub fn api(key: &ObjectKey, action: impl Into<String>) -> impl FnOnce(ApiError) -> Error + '_ {
        let action = action.into();
        move |source| Error::Api { key: key.clone(), action, source }
    }
}

impl ReconcileError for Error {
    fn is_permanent(&self) -> bool {
        matches!(self, Error::InvalidSelector { .. })
    }

    fn is_race(&self) -> bool {
        matches!(self, Error::Api { source, .. } if source.reason == Reason::Conflict)
    }
}
