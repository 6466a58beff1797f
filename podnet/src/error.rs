//! The crate's error type.

/// What went wrong setting up, syncing or removing a pod network. Every
/// message says which object or command failed and, where it can, how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An argument is not usable (a malformed CIDR, a pod CIDR outside the
    /// cluster CIDR, an empty node name).
    #[error("pod network for node \"{node}\": {message}")]
    Invalid {
        /// The node whose network was asked for.
        node: String,
        /// What is wrong, and what would be right.
        message: String,
    },
    /// A Docker network with the node's name exists but does not fit (other
    /// subnet, driver or options) and containers still use it.
    #[error(
        "Docker network \"{network}\" exists but {mismatch}, and containers still use it; remove them \
         (docker network inspect {network}) or the network (docker network rm {network}) and retry"
    )]
    Conflict {
        /// The Docker network.
        network: String,
        /// How it differs from what is needed.
        mismatch: String,
    },
    /// A Docker API call failed.
    #[error("Docker: {action}: {source}")]
    Docker {
        /// What was being done (`creating network "rkube-n1"`).
        action: String,
        /// Docker's error.
        #[source]
        source: bollard::errors::Error,
    },
    /// A host command exited non-zero.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A host command could not be started (not installed, not on PATH).
    #[error("could not run `{command}` (is it installed and on PATH?): {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A kernel setting could not be read or written.
    #[error("{path}: {source} (podnet needs root to configure the host network)")]
    Sysctl {
        /// The `/proc/sys` file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
