//! The command line: kubectl's commands and flags, as clap types.

use clap::{ArgAction, Args, Parser, Subcommand};
use std::path::PathBuf;

/// rkubectl controls the rkube cluster manager.
#[derive(Debug, Parser)]
#[command(name = "rkubectl", version, propagate_version = true, max_term_width = 120)]
pub struct Cli {
    /// Flags every command takes.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// The address and port of the rkube API server, or several comma-separated
    /// to fail over between (also $RKUBE_SERVER).
    #[arg(short = 's', long, global = true)]
    pub server: Option<String>,
    /// Path to the kubeconfig file to use (also $RKUBECONFIG; default ~/.rkube/config).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The namespace scope for this request (default: the kubeconfig context's, or "default").
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a resource from a file or from stdin, or a config map, secret or namespace.
    Create(CreateArgs),
    /// Display one or many resources.
    Get(GetArgs),
    /// Show details of a specific resource or group of resources.
    Describe(DescribeArgs),
    /// Delete resources by file names, stdin, resources and names, or by resources and label selector.
    Delete(DeleteArgs),
    /// Update the labels on a resource.
    Label(MetadataArgs),
    /// Update the annotations on a resource.
    Annotate(MetadataArgs),
    /// Apply a configuration to a resource by file name or stdin.
    Apply(ApplyArgs),
    /// Take a replication controller, service, deployment or pod and expose it as a new Kubernetes service.
    Expose(ExposeArgs),
    /// Set a new size for a replication controller, replica set or deployment.
    Scale(ScaleArgs),
    /// Auto-scale a deployment, replica set or replication controller.
    Autoscale(AutoscaleArgs),
    /// Perform a rolling update of the given replication controller (kubectl 1.17's command).
    RollingUpdate(RollingUpdateArgs),
    /// Manage the rollout of a deployment or daemon set.
    Rollout(RolloutArgs),
    /// Set specific features on objects.
    Set(SetArgs),
    /// Print the logs for a container in a pod.
    Logs(LogsArgs),
    /// Execute a command in a container.
    Exec(ExecArgs),
    /// Display resource (CPU/memory) usage.
    Top(TopArgs),
    /// Print the client and server version information.
    Version(VersionArgs),
    /// Print the supported API resources on the server.
    ApiResources(ApiResourcesArgs),
    /// Inspect authorization.
    Auth(AuthArgs),
}

/// `create -f FILE` or `create configmap|namespace|secret ...`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CreateArgs {
    /// Files, directories or "-" (stdin) that contain the resources to create.
    #[arg(short = 'f', long = "filename")]
    pub filenames: Vec<String>,
    /// Process the directories given with -f recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Output format: name, yaml or json (default: "kind/name created").
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// What to create without a file.
    #[command(subcommand)]
    pub what: Option<CreateWhat>,
}

/// Objects `create` builds from flags.
#[derive(Debug, Subcommand)]
pub enum CreateWhat {
    /// Create a config map from literal values, files or directories.
    #[command(visible_alias = "cm")]
    Configmap(CreateConfigMapArgs),
    /// Create a namespace.
    #[command(visible_alias = "ns")]
    Namespace(CreateNamespaceArgs),
    /// Create a secret.
    Secret {
        /// The kind of secret.
        #[command(subcommand)]
        kind: SecretKind,
    },
}

/// Kinds of secrets `create secret` makes.
#[derive(Debug, Subcommand)]
pub enum SecretKind {
    /// Create a secret from literal values, files or directories.
    Generic(CreateSecretArgs),
}

/// Where the keys of a config map or secret come from.
#[derive(Debug, Args)]
pub struct DataSources {
    /// A key and literal value: key=value (repeatable).
    #[arg(long = "from-literal")]
    pub literals: Vec<String>,
    /// A file ([key=]path; the key defaults to the file name) or a directory of files (repeatable).
    #[arg(long = "from-file")]
    pub files: Vec<String>,
    /// A file of KEY=value lines (repeatable).
    #[arg(long = "from-env-file")]
    pub env_files: Vec<String>,
}

/// Output of the `create` subcommands.
#[derive(Debug, Args)]
pub struct CreateOutput {
    /// Output format: name, yaml or json (default: "kind/name created").
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// "none" (default) or "client": only print the object that would be sent.
    #[arg(long = "dry-run", default_value = "none", num_args = 0..=1, default_missing_value = "client")]
    pub dry_run: String,
}

/// `create configmap NAME ...`.
#[derive(Debug, Args)]
pub struct CreateConfigMapArgs {
    /// The config map's name.
    pub name: String,
    /// Its keys.
    #[command(flatten)]
    pub sources: DataSources,
    /// Where the result goes.
    #[command(flatten)]
    pub output: CreateOutput,
}

/// `create secret generic NAME ...`.
#[derive(Debug, Args)]
pub struct CreateSecretArgs {
    /// The secret's name.
    pub name: String,
    /// The secret's type.
    #[arg(long = "type", default_value = "Opaque")]
    pub kind: String,
    /// Its keys.
    #[command(flatten)]
    pub sources: DataSources,
    /// Where the result goes.
    #[command(flatten)]
    pub output: CreateOutput,
}

/// `create namespace NAME`.
#[derive(Debug, Args)]
pub struct CreateNamespaceArgs {
    /// The namespace's name.
    pub name: String,
    /// Where the result goes.
    #[command(flatten)]
    pub output: CreateOutput,
}

/// `get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// TYPE[,TYPE...] [NAME...], or TYPE/NAME ...
    pub resources: Vec<String>,
    /// Output format: wide, yaml, json or name.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Label selector (e.g. -l app=web,tier!=db).
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    /// Field selector (e.g. --field-selector status.phase=Running).
    #[arg(long = "field-selector")]
    pub field_selector: Option<String>,
    /// List across all namespaces.
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
    /// After listing, watch for changes.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Watch for changes without listing first.
    #[arg(long = "watch-only")]
    pub watch_only: bool,
    /// Show all labels as the last column.
    #[arg(long = "show-labels")]
    pub show_labels: bool,
    /// Show these labels as columns (-L app,tier).
    #[arg(short = 'L', long = "label-columns", value_delimiter = ',')]
    pub label_columns: Vec<String>,
    /// Don't print headers.
    #[arg(long = "no-headers")]
    pub no_headers: bool,
    /// Don't report objects that do not exist.
    #[arg(long = "ignore-not-found")]
    pub ignore_not_found: bool,
}

/// `describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// TYPE [NAME_PREFIX...], or TYPE/NAME ...
    pub resources: Vec<String>,
    /// Label selector.
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    /// Describe across all namespaces.
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
    /// Show the events of each object.
    #[arg(long = "show-events", default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub show_events: bool,
}

/// `delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// TYPE [NAME...], or TYPE/NAME ...
    pub resources: Vec<String>,
    /// Files, directories or "-" (stdin) naming the resources to delete.
    #[arg(short = 'f', long = "filename")]
    pub filenames: Vec<String>,
    /// Process the directories given with -f recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Label selector.
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    /// Field selector.
    #[arg(long = "field-selector")]
    pub field_selector: Option<String>,
    /// Delete every object of the types in the namespace.
    #[arg(long)]
    pub all: bool,
    /// Delete across all namespaces.
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
    /// Seconds given to the object to terminate gracefully (-1: its own default).
    #[arg(long = "grace-period", default_value_t = -1, allow_negative_numbers = true)]
    pub grace_period: i64,
    /// Signal the object to stop at once (grace period 1).
    #[arg(long)]
    pub now: bool,
    /// Remove the object from the API at once, without waiting for it to stop (grace period 0).
    #[arg(long)]
    pub force: bool,
    /// Wait until the objects are gone.
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub wait: bool,
    /// How long to wait for deletion (e.g. 30s, 2m).
    #[arg(long, default_value = "60s")]
    pub timeout: String,
    /// Don't report objects that do not exist.
    #[arg(long = "ignore-not-found")]
    pub ignore_not_found: bool,
    /// background, foreground or orphan: what happens to the objects' dependents.
    #[arg(long, default_value = "background", num_args = 0..=1, default_missing_value = "background")]
    pub cascade: String,
    /// Output format: name (default: `kind "name" deleted`).
    #[arg(short = 'o', long)]
    pub output: Option<String>,
}

/// `label` and `annotate`.
#[derive(Debug, Args)]
pub struct MetadataArgs {
    /// TYPE NAME... KEY=VALUE... KEY-..., or TYPE/NAME ... KEY=VALUE ...
    pub args: Vec<String>,
    /// Allow changing the value of an existing key.
    #[arg(long)]
    pub overwrite: bool,
    /// Label selector of the objects to change.
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    /// Change every object of the type in the namespace.
    #[arg(long)]
    pub all: bool,
    /// Change objects across all namespaces.
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
    /// Only change the object if it still has this resourceVersion.
    #[arg(long = "resource-version")]
    pub resource_version: Option<String>,
    /// List the keys and values instead of changing them.
    #[arg(long)]
    pub list: bool,
}

/// `expose (TYPE NAME | TYPE/NAME | -f FILE) [--port=PORT] ...`.
#[derive(Debug, Args)]
pub struct ExposeArgs {
    /// TYPE NAME or TYPE/NAME (rc, deploy, rs, svc, pod).
    pub resources: Vec<String>,
    /// A file (or "-" for stdin) naming the object to expose.
    #[arg(short = 'f', long = "filename")]
    pub filenames: Vec<String>,
    /// The port that the service should serve on (default: the object's ports).
    #[arg(long)]
    pub port: Option<String>,
    /// Name or number of the port on the container that the service directs traffic to (default: --port).
    #[arg(long = "target-port", alias = "container-port")]
    pub target_port: Option<String>,
    /// The service's type: ClusterIP, NodePort, LoadBalancer or ExternalName (default: ClusterIP).
    #[arg(long = "type")]
    pub type_: Option<String>,
    /// The name of the new service (default: the object's).
    #[arg(long)]
    pub name: Option<String>,
    /// The network protocol of the service (default: the object's for the port, else TCP).
    #[arg(long)]
    pub protocol: Option<String>,
    /// The label selector of the service's pods (default: the object's selector, a pod's labels).
    #[arg(long)]
    pub selector: Option<String>,
    /// Labels of the service (default: the object's labels).
    #[arg(short = 'l', long)]
    pub labels: Option<String>,
    /// None (default) or ClientIP.
    #[arg(long = "session-affinity")]
    pub session_affinity: Option<String>,
    /// The ClusterIP to ask for; "None" makes a headless service (default: allocated).
    #[arg(long = "cluster-ip")]
    pub cluster_ip: Option<String>,
    /// An external IP the service also accepts traffic on.
    #[arg(long = "external-ip")]
    pub external_ip: Option<String>,
    /// The IP a LoadBalancer service asks for.
    #[arg(long = "load-balancer-ip")]
    pub load_balancer_ip: Option<String>,
    /// Output format: name, yaml or json (default: "service/NAME exposed").
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// "none" (default) or "client": only print the service that would be created.
    #[arg(long = "dry-run", default_value = "none", num_args = 0..=1, default_missing_value = "client")]
    pub dry_run: String,
}

/// `scale`.
#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// TYPE NAME..., or TYPE/NAME ...
    pub resources: Vec<String>,
    /// Files, directories or "-" (stdin) naming the objects to scale.
    #[arg(short = 'f', long = "filename")]
    pub filenames: Vec<String>,
    /// Process the directories given with -f recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// The new number of replicas (required).
    #[arg(long, allow_negative_numbers = true)]
    pub replicas: Option<i32>,
    /// Only scale if the current number of replicas is this (-1: any).
    #[arg(long = "current-replicas", default_value_t = -1, allow_negative_numbers = true)]
    pub current_replicas: i32,
    /// Only scale if the object still has this resourceVersion.
    #[arg(long = "resource-version")]
    pub resource_version: Option<String>,
    /// Label selector of the objects to scale.
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    /// Scale every object of the type in the namespace.
    #[arg(long)]
    pub all: bool,
    /// How long to wait for the new size to be reached (0s: do not wait).
    #[arg(long, default_value = "0s")]
    pub timeout: String,
    /// Output format: name (default: "kind/name scaled").
    #[arg(short = 'o', long)]
    pub output: Option<String>,
}

/// `autoscale (TYPE NAME | TYPE/NAME | -f FILE) [--min=MINPODS] --max=MAXPODS [--cpu-percent=CPU]`.
#[derive(Debug, Args)]
pub struct AutoscaleArgs {
    /// TYPE NAME or TYPE/NAME (rc, rs, deploy).
    pub resources: Vec<String>,
    /// A file (or "-" for stdin) naming the object to autoscale.
    #[arg(short = 'f', long = "filename")]
    pub filenames: Vec<String>,
    /// The lower limit for the number of pods (default: the server's, 1).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub min: i32,
    /// The upper limit for the number of pods (required).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub max: i32,
    /// The target average CPU utilization, in percent of the request (default: the server's, 80%).
    #[arg(long = "cpu-percent", default_value_t = -1, allow_negative_numbers = true)]
    pub cpu_percent: i32,
    /// The name of the new autoscaler (default: the object's).
    #[arg(long)]
    pub name: Option<String>,
    /// Output format: name, yaml or json (default: "horizontalpodautoscaler.autoscaling/NAME autoscaled").
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// "none" (default) or "client": only print the autoscaler that would be created.
    #[arg(long = "dry-run", default_value = "none", num_args = 0..=1, default_missing_value = "client")]
    pub dry_run: String,
}

/// `rolling-update OLD [NEW] (--image=IMAGE | -f NEW.yaml)`, or `--rollback`.
#[derive(Debug, Args)]
pub struct RollingUpdateArgs {
    /// OLD_CONTROLLER_NAME [NEW_CONTROLLER_NAME]
    pub names: Vec<String>,
    /// The file (or "-" for stdin) of the new replication controller.
    #[arg(short = 'f', long = "filename")]
    pub filenames: Vec<String>,
    /// The image to roll out (instead of -f); must differ from the current one.
    #[arg(long)]
    pub image: Option<String>,
    /// The label key that tells the old and new pods apart (with --image).
    #[arg(long = "deployment-label-key", default_value = "deployment")]
    pub deployment_label_key: String,
    /// The container whose image changes (with --image; required for multi-container pods).
    #[arg(long)]
    pub container: Option<String>,
    /// Always, Never or IfNotPresent (with --image; required when the image does not change).
    #[arg(long = "image-pull-policy")]
    pub image_pull_policy: Option<String>,
    /// Abort an update in progress: scale the old controller back up and delete the new one.
    #[arg(long, default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub rollback: bool,
    /// Time to wait between updating pods (Go duration: 1m0s, 10s, 500ms).
    #[arg(long = "update-period", default_value = "1m0s")]
    pub update_period: String,
    /// Time between polls of the controllers' status.
    #[arg(long = "poll-interval", default_value = "3s")]
    pub poll_interval: String,
    /// How long to wait for progress before giving up.
    #[arg(long, default_value = "5m0s")]
    pub timeout: String,
    /// Only print which controllers the update would roll from and to.
    #[arg(long = "dry-run", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub dry_run: bool,
    /// Output format: name (default: "kind/name rolling updated").
    #[arg(short = 'o', long)]
    pub output: Option<String>,
}

/// `rollout SUBCOMMAND`.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    /// What to do with the rollout.
    #[command(subcommand)]
    pub what: RolloutWhat,
}

/// The `rollout` subcommands.
#[derive(Debug, Subcommand)]
pub enum RolloutWhat {
    /// Show the status of the rollout.
    Status(RolloutStatusArgs),
    /// View rollout history.
    History(RolloutHistoryArgs),
    /// Undo a previous rollout.
    Undo(RolloutUndoArgs),
    /// Mark the provided resource as paused.
    Pause(RolloutTargets),
    /// Resume a paused resource.
    Resume(RolloutTargets),
    /// Restart a resource.
    Restart(RolloutTargets),
}

/// The objects a `rollout` subcommand works on.
#[derive(Debug, Args)]
pub struct RolloutTargets {
    /// TYPE NAME..., or TYPE/NAME ...
    pub resources: Vec<String>,
    /// Files, directories or "-" (stdin) naming the objects.
    #[arg(short = 'f', long = "filename")]
    pub filenames: Vec<String>,
    /// Process the directories given with -f recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Label selector of the objects.
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    /// Output format: name (default: "kind/name <what happened>").
    #[arg(short = 'o', long)]
    pub output: Option<String>,
}

/// `rollout status (TYPE NAME | TYPE/NAME)`.
#[derive(Debug, Args)]
pub struct RolloutStatusArgs {
    /// TYPE NAME, or TYPE/NAME.
    pub resources: Vec<String>,
    /// Files naming the object.
    #[arg(short = 'f', long = "filename")]
    pub filenames: Vec<String>,
    /// Watch the status of the rollout until it's done.
    #[arg(short = 'w', long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub watch: bool,
    /// Pin to a specific revision (0: the latest).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub revision: i64,
    /// How long to watch before giving up (0s: forever).
    #[arg(long, default_value = "0s")]
    pub timeout: String,
}

/// `rollout history (TYPE NAME | TYPE/NAME) [--revision=N]`.
#[derive(Debug, Args)]
pub struct RolloutHistoryArgs {
    /// The objects.
    #[command(flatten)]
    pub targets: RolloutTargets,
    /// Show the pod template of this revision.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub revision: i64,
}

/// `rollout undo (TYPE NAME | TYPE/NAME) [--to-revision=N]`.
#[derive(Debug, Args)]
pub struct RolloutUndoArgs {
    /// The objects.
    #[command(flatten)]
    pub targets: RolloutTargets,
    /// The revision to roll back to (0: the previous one).
    #[arg(long = "to-revision", default_value_t = 0, allow_negative_numbers = true)]
    pub to_revision: i64,
}

/// `set SUBCOMMAND`.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// What to set.
    #[command(subcommand)]
    pub what: SetWhat,
}

/// The `set` subcommands.
#[derive(Debug, Subcommand)]
pub enum SetWhat {
    /// Update the image of a pod template.
    Image(SetImageArgs),
}

/// `set image (TYPE NAME | TYPE/NAME | -f FILE) CONTAINER=IMAGE ...`.
#[derive(Debug, Args)]
pub struct SetImageArgs {
    /// The objects, then CONTAINER=IMAGE pairs ("*" for every container).
    pub args: Vec<String>,
    /// Files, directories or "-" (stdin) naming the objects.
    #[arg(short = 'f', long = "filename")]
    pub filenames: Vec<String>,
    /// Process the directories given with -f recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Label selector of the objects.
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    /// Every object of the type in the namespace.
    #[arg(long)]
    pub all: bool,
    /// Output format: name (default: "kind/name image updated").
    #[arg(short = 'o', long)]
    pub output: Option<String>,
}

/// `apply -f FILE|DIR|-`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Files, directories or "-" (stdin) with the configuration to apply.
    #[arg(short = 'f', long = "filename")]
    pub filenames: Vec<String>,
    /// Process the directories given with -f recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Output format: name (default: "kind/name created|configured|unchanged").
    #[arg(short = 'o', long)]
    pub output: Option<String>,
}

/// `version`.
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Only the client version.
    #[arg(long)]
    pub client: bool,
    /// Output format: yaml or json.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
}

/// `auth`.
#[derive(Debug, Args)]
pub struct AuthArgs {
    /// What to inspect.
    #[command(subcommand)]
    pub what: AuthWhat,
}

/// `auth` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuthWhat {
    /// Check whether an action is allowed.
    CanI(CanIArgs),
}

/// `auth can-i VERB TYPE[/NAME] | VERB /PATH`.
#[derive(Debug, Args)]
pub struct CanIArgs {
    /// The verb: get, list, watch, create, update, patch, delete, ... or `*`.
    pub verb: String,
    /// The resource type (`pods`, `deployments.apps`, `pods/NAME`) or a
    /// non-resource URL (`/logs`).
    pub resource: String,
    /// A name, when not given as TYPE/NAME.
    pub name: Option<String>,
    /// If true, check the action in all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// The subresource (`log`, `exec`, `status`, ...).
    #[arg(long, default_value = "")]
    pub subresource: String,
    /// If true, print nothing; the exit code (0 yes, 1 no) tells.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// `api-resources`.
#[derive(Debug, Args)]
pub struct ApiResourcesArgs {
    /// true: only namespaced resources; false: only cluster-scoped ones.
    #[arg(long)]
    pub namespaced: Option<bool>,
    /// Only resources of this API group ("" for core).
    #[arg(long = "api-group")]
    pub api_group: Option<String>,
    /// Output format: wide or name.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Don't print headers.
    #[arg(long = "no-headers")]
    pub no_headers: bool,
}

/// `logs POD [-c CONTAINER]`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The pod (or `pod/NAME`).
    pub pod: String,
    /// The container (default: the pod's only or first container).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Stream new lines as they are written.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Print the logs of the previous instance of the container.
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Lines of recent log to show (-1: all).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub tail: i64,
    /// Prefix each line with its timestamp.
    #[arg(long)]
    pub timestamps: bool,
}

/// `top nodes|pods`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// What to show.
    #[command(subcommand)]
    pub what: TopWhat,
}

/// What `top` shows.
#[derive(Debug, Subcommand)]
pub enum TopWhat {
    /// Display resource (CPU/memory) usage of nodes.
    #[command(visible_aliases = ["node", "no"])]
    Nodes(TopNodesArgs),
    /// Display resource (CPU/memory) usage of pods.
    #[command(visible_aliases = ["pod", "po"])]
    Pods(TopPodsArgs),
}

/// `top nodes [NAME]`.
#[derive(Debug, Args)]
pub struct TopNodesArgs {
    /// One node.
    pub name: Option<String>,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Don't print headers.
    #[arg(long)]
    pub no_headers: bool,
}

/// `top pods [NAME]`.
#[derive(Debug, Args)]
pub struct TopPodsArgs {
    /// One pod.
    pub name: Option<String>,
    /// Pods in all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// One line per container.
    #[arg(long)]
    pub containers: bool,
    /// Don't print headers.
    #[arg(long)]
    pub no_headers: bool,
}

/// `exec [-i] [-t] POD [-c CONTAINER] -- COMMAND [ARGS...]`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Pass stdin to the container.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Stdin is a TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// The container (default: the pod's only or first container).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// The pod (or `pod/NAME`).
    pub pod: String,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, num_args = 1..)]
    pub command: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn create_takes_files_or_a_subcommand() {
        let cli = Cli::parse_from(["rkubectl", "create", "-f", "a.yaml", "-f", "dir", "-n", "x"]);
        let Command::Create(c) = cli.command else { panic!("create") };
        assert_eq!(c.filenames, ["a.yaml", "dir"]);
        assert_eq!(cli.global.namespace.as_deref(), Some("x"));
        let cli = Cli::parse_from(["rkubectl", "create", "cm", "app", "--from-literal=a=b", "--from-file=k=p"]);
        let Command::Create(CreateArgs { what: Some(CreateWhat::Configmap(cm)), .. }) = cli.command else {
            panic!("configmap")
        };
        assert_eq!((cm.name.as_str(), cm.sources.literals.len(), cm.sources.files.len()), ("app", 1, 1));
    }

    #[test]
    fn boolean_flags_accept_explicit_values() {
        let cli = Cli::parse_from(["rkubectl", "delete", "pod", "web", "--wait=false", "--grace-period=0", "--force"]);
        let Command::Delete(d) = cli.command else { panic!("delete") };
        assert!(!d.wait && d.force);
        assert_eq!(d.grace_period, 0);
        let cli = Cli::parse_from(["rkubectl", "describe", "pods", "--show-events=false"]);
        let Command::Describe(d) = cli.command else { panic!("describe") };
        assert!(!d.show_events);
    }
}
