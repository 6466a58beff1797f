//! rkube's PKI: a cluster CA and the certificates and kubeconfigs its components authenticate with,
//! laid out the way kubeadm does it, made with rcgen (no openssl CLI).
//!
//! Start with [`Pki::ensure`], which creates whatever is missing in a certificate directory and keeps
//! what exists (certificates, kubeconfigs, and `sa.key`/`sa.pub`, the service account token keys); [`Ca`] and [`LeafSpec`] are the building blocks it uses, and [`kubeconfig`] renders the
//! credentials in the format kubectl reads.

mod args;
mod ca;
mod kubeconfig;
mod pki;

use std::path::PathBuf;

pub use args::{Args, NodeArg};
pub use ca::{Ca, LEAF_VALIDITY_DAYS, Leaf, LeafSpec};
pub use kubeconfig::kubeconfig;
pub use pki::{Outcome, Pki, Report};

/// Everything that can go wrong while generating, loading or writing the PKI.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading, writing or creating a file or directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// rcgen could not build or sign a certificate (e.g. a DNS name that is not ASCII).
    #[error("cannot issue the certificate for {common_name:?}: {source}")]
    Issue {
        /// The common name of the certificate being issued.
        common_name: String,
        /// The underlying error.
        #[source]
        source: rcgen::Error,
    },
    /// A PEM file does not hold a usable certificate or private key.
    #[error("{path}: not a usable PEM certificate or key: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: rcgen::Error,
    },
    /// The CA certificate is not a CA (no basicConstraints CA:TRUE) or does not belong to the key.
    #[error("{path}: {reason}")]
    BadCa {
        /// The CA certificate file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// One half of a certificate/key pair exists without the other. Issuing a new pair would
    /// silently replace a credential that may already be in use, so the operator decides.
    #[error("{present} exists but {missing} is missing; restore {missing} or remove {present} to re-issue")]
    IncompletePair {
        /// The file that exists.
        present: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },
    /// A new CA would be generated while certificates issued by a previous CA are still around;
    /// keeping them would leave credentials that nothing trusts.
    #[error(
        "{existing} exists but the CA that issued it ({ca}) is gone; remove the directory's certificates to start over"
    )]
    OrphanedCertificate {
        /// The CA certificate that is missing.
        ca: PathBuf,
        /// A certificate or kubeconfig issued by the old CA.
        existing: PathBuf,
    },
    /// The certificate request cannot be expressed (see the message).
    #[error("invalid certificate request for {common_name:?}: {reason}")]
    InvalidSpec {
        /// The common name of the certificate.
        common_name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A node name cannot be used in a certificate or a file name.
    #[error("invalid node name {name:?}: {reason}")]
    InvalidNodeName {
        /// The node name.
        name: String,
        /// Why it is invalid.
        reason: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A fresh directory under the system temp dir, removed on drop.
#[cfg(test)]
pub(crate) struct ScratchDir(pub(crate) PathBuf);

#[cfg(test)]
impl ScratchDir {
    pub(crate) fn new(name: &str) -> ScratchDir {
        let path = std::env::temp_dir().join(format!("rkube-pki-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create scratch dir");
        ScratchDir(path)
    }
}

#[cfg(test)]
impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
