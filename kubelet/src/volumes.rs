//! Pod volumes on the node's disk, under `<root-dir>/pods/<uid>/volumes/`.
//!
//! - `emptyDir`: a directory shared by the pod's containers (a tmpfs with
//!   `medium: Memory`), removed with the pod;
//! - `hostPath`: the host's path, checked or created per its `type`;
//! - `configMap` / `secret`: the object's keys projected as files (secrets
//!   on a tmpfs), with `items` (key → path) and `defaultMode` / `mode`.
//!   Every sync projects them again; a change is swapped in atomically the
//!   way Kubernetes' AtomicWriter does ([`write_atomic`]). A change to the
//!   object re-syncs the pod at once ([`crate::objects::requeue_users`]);
//! - `persistentVolumeClaim`: the bound PersistentVolume's `hostPath`;
//! - `downwardAPI`: the pod's metadata (`metadata.name`, `namespace`, `uid`,
//!   `labels`, `annotations`, one label or annotation) as files;
//! - `projected` (on a tmpfs): configMap, secret, downwardAPI and
//!   `serviceAccountToken` sources in one directory, written atomically
//!   together. Tokens come from the TokenRequest API, bound to the pod
//!   ([`crate::service_account_tokens`]), and are replaced once 80% of
//!   their lifetime has passed; this is the volume the ServiceAccount
//!   admission plugin mounts at `/var/run/secrets/kubernetes.io/serviceaccount`.
//!
//! The objects come from per-object watches ([`ObjectCache`]),
//! not from a GET per sync.
//!
//! A ConfigMap, Secret or claim that does not exist (and is not `optional`)
//! is a [`VolumeError::Missing`]: the pod waits until it appears.

use crate::containers::ConfigError;
use crate::objects::ObjectCache;
use crate::runtime::Mount;
use crate::service_account_tokens::TokenManager;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod, Secret,
    Volume,
};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// The mode of projected files unless `defaultMode` says otherwise.
pub const DEFAULT_FILE_MODE: u32 = 0o644;
/// Where the current projection of a configMap/secret volume is linked.
const DATA_LINK: &str = "..data";

/// Why a pod's volumes cannot be set up (yet).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VolumeError {
    /// An object the volume needs does not exist: the pod waits for it
    /// (containers show `CreateContainerConfigError`).
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : {message}")]
    Missing {
        /// The volume.
        volume: String,
        /// What is missing, as Kubernetes says it (`configmap "x" not found`).
        message: String,
    },
    /// The volume could not be set up.
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : {message}")]
    Failed {
        /// The volume.
        volume: String,
        /// What went wrong.
        message: String,
    },
}

impl VolumeError {
    /// The message alone (`configmap "x" not found`).
    pub fn message(&self) -> &str {
        match self {
            VolumeError::Missing { message, .. } | VolumeError::Failed { message, .. } => message,
        }
    }
}

/// A volume's directory (or file) on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostVolume {
    /// The path on the host.
    pub path: PathBuf,
    /// Whether every mount of it is read-only.
    pub read_only: bool,
}

/// The host side of a pod's volumes, by volume name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodVolumes {
    /// Volume name → host path.
    pub volumes: BTreeMap<String, HostVolume>,
}

/// Sets up and tears down pod volumes under a root directory.
#[derive(Debug, Clone)]
pub struct VolumeManager {
    root_dir: PathBuf,
    objects: ObjectCache,
    use_tmpfs: bool,
    tokens: Arc<TokenManager>,
}

impl VolumeManager {
    /// Volumes under `root_dir`, reading objects from `objects`; with
    /// `use_tmpfs` false (hollow nodes), memory-backed volumes are plain
    /// directories.
    pub fn new(root_dir: &Path, objects: ObjectCache, use_tmpfs: bool) -> VolumeManager {
        let tokens = Arc::new(TokenManager::new(objects.client().clone()));
        VolumeManager { root_dir: root_dir.to_path_buf(), objects, use_tmpfs, tokens }
    }

    /// Where the objects pods use are read from (shared with the pod manager).
    pub fn objects(&self) -> &ObjectCache {
        &self.objects
    }

    /// `<root-dir>/pods`.
    pub fn pods_dir(&self) -> PathBuf {
        self.root_dir.join("pods")
    }

    /// `<root-dir>/pods/<uid>`.
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.pods_dir().join(uid)
    }

    /// The uids that have a pod directory.
    pub fn pod_dirs(&self) -> Vec<String> {
        std::fs::read_dir(self.pods_dir())
            .map(|d| d.flatten().filter_map(|e| e.file_name().into_string().ok()).collect())
            .unwrap_or_default()
    }

    fn volume_dir(&self, uid: &str, plugin: &str, name: &str) -> PathBuf {
        self.pod_dir(uid).join("volumes").join(format!("kubernetes.io~{plugin}")).join(name)
    }

    /// Sets up every volume of `pod` (idempotent; projections are refreshed).
    pub async fn setup(&self, pod: &Pod) -> Result<PodVolumes, VolumeError> {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let mut out = PodVolumes::default();
        for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            let host = self.setup_volume(pod, uid, namespace, v).await?;
            out.volumes.insert(v.name.clone(), host);
        }
        Ok(out)
    }

    async fn setup_volume(&self, pod: &Pod, uid: &str, namespace: &str, v: &Volume) -> Result<HostVolume, VolumeError> {
        let failed = |message: String| VolumeError::Failed { volume: v.name.clone(), message };
        let missing = |message: String| VolumeError::Missing { volume: v.name.clone(), message };
        let api_failed = |e: rkube_client::ApiError| failed(e.to_string());
        if let Some(ed) = &v.empty_dir {
            let dir = self.volume_dir(uid, "empty-dir", &v.name);
            create_dir(&dir, 0o777).map_err(|e| failed(format!("creating {}: {e}", dir.display())))?;
            if ed.medium.as_deref() == Some("Memory") {
                let size =
                    ed.size_limit.as_ref().and_then(|q| rkube_api::quantity::parse_k8s(q).ok()).map(|q| q.value());
                self.ensure_tmpfs(&dir, size.and_then(|s| u64::try_from(s).ok())).await.map_err(failed)?;
            }
            return Ok(HostVolume { path: dir, read_only: false });
        }
        if let Some(hp) = &v.host_path {
            let path = PathBuf::from(&hp.path);
            check_host_path(&path, hp.type_.as_deref().unwrap_or_default()).map_err(failed)?;
            return Ok(HostVolume { path, read_only: false });
        }
        if let Some(src) = &v.config_map {
            let optional = src.optional == Some(true);
            let files = match self.objects.get::<ConfigMap>(namespace, &src.name).await.map_err(api_failed)? {
                Some(cm) => {
                    let data = config_map_payload(&cm);
                    project(&data, src.items.as_deref(), src.default_mode, optional, "configmap").map_err(missing)?
                }
                None if optional => BTreeMap::new(),
                None => return Err(missing(format!("configmap \"{}\" not found", src.name))),
            };
            let dir = self.volume_dir(uid, "configmap", &v.name);
            self.write_projection(dir.clone(), files, false).await.map_err(failed)?;
            return Ok(HostVolume { path: dir, read_only: true });
        }
        if let Some(src) = &v.secret {
            let name = src.secret_name.clone().unwrap_or_default();
            let optional = src.optional == Some(true);
            let files = match self.objects.get::<Secret>(namespace, &name).await.map_err(api_failed)? {
                Some(s) => {
                    let data = secret_payload(&s);
                    project(&data, src.items.as_deref(), src.default_mode, optional, "secret").map_err(missing)?
                }
                None if optional => BTreeMap::new(),
                None => return Err(missing(format!("secret \"{name}\" not found"))),
            };
            let dir = self.volume_dir(uid, "secret", &v.name);
            self.write_projection(dir.clone(), files, true).await.map_err(failed)?;
            return Ok(HostVolume { path: dir, read_only: true });
        }
        if let Some(src) = &v.persistent_volume_claim {
            let claim = self.objects.get::<PersistentVolumeClaim>(namespace, &src.claim_name).await;
            let Some(pvc) = claim.map_err(api_failed)? else {
                return Err(missing(format!("persistentvolumeclaim \"{}\" not found", src.claim_name)));
            };
            let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
            let pv_name = pvc.spec.as_ref().and_then(|s| s.volume_name.clone()).filter(|n| !n.is_empty());
            let Some(pv_name) = pv_name.filter(|_| bound) else {
                return Err(missing(format!("persistentvolumeclaim \"{}\" is not bound", src.claim_name)));
            };
            let Some(pv) = self.objects.get::<PersistentVolume>("", &pv_name).await.map_err(api_failed)? else {
                return Err(missing(format!("persistentvolume \"{pv_name}\" not found")));
            };
            let Some(hp) = pv.spec.as_ref().and_then(|s| s.host_path.as_ref()) else {
                return Err(failed(format!(
                    "persistentvolume \"{pv_name}\" is not a hostPath volume; rkubelet mounts only hostPath volumes"
                )));
            };
            let path = PathBuf::from(&hp.path);
            check_host_path(&path, hp.type_.as_deref().unwrap_or_default()).map_err(failed)?;
            return Ok(HostVolume { path, read_only: src.read_only == Some(true) });
        }
        if let Some(src) = &v.downward_api {
            let default_mode = mode_or(src.default_mode, DEFAULT_FILE_MODE);
            let files = downward_files(pod, src.items.iter().flatten(), default_mode).map_err(failed)?;
            let dir = self.volume_dir(uid, "downward-api", &v.name);
            self.write_projection(dir.clone(), files, false).await.map_err(failed)?;
            return Ok(HostVolume { path: dir, read_only: true });
        }
        if let Some(src) = &v.projected {
            let default_mode = mode_or(src.default_mode, DEFAULT_FILE_MODE);
            let mut files = Payload::new();
            for source in src.sources.iter().flatten() {
                if let Some(cm) = &source.config_map {
                    let optional = cm.optional == Some(true);
                    match self.objects.get::<ConfigMap>(namespace, &cm.name).await.map_err(api_failed)? {
                        Some(obj) => files.extend(
                            project(
                                &config_map_payload(&obj),
                                cm.items.as_deref(),
                                Some(default_mode as i32),
                                optional,
                                "configmap",
                            )
                            .map_err(missing)?,
                        ),
                        None if optional => {}
                        None => return Err(missing(format!("configmap \"{}\" not found", cm.name))),
                    }
                }
                if let Some(secret) = &source.secret {
                    let optional = secret.optional == Some(true);
                    match self.objects.get::<Secret>(namespace, &secret.name).await.map_err(api_failed)? {
                        Some(obj) => files.extend(
                            project(
                                &secret_payload(&obj),
                                secret.items.as_deref(),
                                Some(default_mode as i32),
                                optional,
                                "secret",
                            )
                            .map_err(missing)?,
                        ),
                        None if optional => {}
                        None => return Err(missing(format!("secret \"{}\" not found", secret.name))),
                    }
                }
                if let Some(d) = &source.downward_api {
                    files.extend(downward_files(pod, d.items.iter().flatten(), default_mode).map_err(failed)?);
                }
                if let Some(t) = &source.service_account_token {
                    check_relative(&t.path).map_err(failed)?;
                    let audience = t.audience.as_deref().unwrap_or_default();
                    let seconds = t.expiration_seconds.unwrap_or(DEFAULT_TOKEN_EXPIRATION_SECONDS);
                    let token = self
                        .tokens
                        .token(pod, audience, seconds)
                        .await
                        .map_err(|e| failed(format!("failed to fetch token: {}", e.message)))?;
                    files.insert(t.path.clone(), (token.into_bytes(), default_mode));
                }
                if source.cluster_trust_bundle.is_some() {
                    return Err(failed("clusterTrustBundle projections are not supported by rkubelet".into()));
                }
            }
            let dir = self.volume_dir(uid, "projected", &v.name);
            self.write_projection(dir.clone(), files, true).await.map_err(failed)?;
            return Ok(HostVolume { path: dir, read_only: true });
        }
        Err(failed(
            "unsupported volume type; rkubelet supports emptyDir, hostPath, configMap, secret, downwardAPI, projected and persistentVolumeClaim"
                .into(),
        ))
    }

    async fn write_projection(&self, dir: PathBuf, files: Payload, tmpfs: bool) -> Result<(), String> {
        create_dir(&dir, 0o755).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        if tmpfs {
            self.ensure_tmpfs(&dir, None).await?;
        }
        let shown = dir.display().to_string();
        tokio::task::spawn_blocking(move || write_atomic(&dir, &files))
            .await
            .map_err(|e| format!("writing {shown}: {e}"))?
            .map(|_| ())
            .map_err(|e| format!("writing {shown}: {e}"))
    }

    /// Mounts a tmpfs on `dir` unless one is there (or tmpfs is off).
    async fn ensure_tmpfs(&self, dir: &Path, size: Option<u64>) -> Result<(), String> {
        if !self.use_tmpfs || mount_points().contains(dir) {
            return Ok(());
        }
        let mut cmd = tokio::process::Command::new("mount");
        cmd.args(["-t", "tmpfs"]);
        if let Some(size) = size {
            cmd.args(["-o", &format!("size={size}")]);
        }
        cmd.arg("tmpfs").arg(dir);
        let out = cmd.output().await.map_err(|e| format!("running mount (is it installed?): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mounting a tmpfs on {}: {} (rkubelet needs root)",
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(())
    }

    /// Unmounts everything under the pod's directory and removes it.
    pub async fn teardown(&self, uid: &str) -> io::Result<()> {
        self.tokens.forget(uid);
        let dir = self.pod_dir(uid);
        let mut mounts: Vec<PathBuf> = mount_points().into_iter().filter(|m| m.starts_with(&dir)).collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
        for m in mounts {
            let out = tokio::process::Command::new("umount").arg(&m).output().await?;
            if !out.status.success() {
                return Err(io::Error::other(format!(
                    "unmounting {}: {}",
                    m.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }
        match tokio::fs::remove_dir_all(&dir).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn create_dir(dir: &Path, mode: u32) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
}

/// The mount points listed in `/proc/self/mountinfo`.
fn mount_points() -> BTreeSet<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo").map(|t| parse_mountinfo(&t)).unwrap_or_default()
}

/// The mount points (5th field, octal escapes decoded) of a mountinfo text.
pub fn parse_mountinfo(text: &str) -> BTreeSet<PathBuf> {
    text.lines().filter_map(|l| l.split(' ').nth(4)).map(|p| PathBuf::from(unescape_octal(p))).collect()
}

fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.len() >= i + 4 && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks (or creates) a hostPath per its `type`.
fn check_host_path(path: &Path, kind: &str) -> Result<(), String> {
    let meta = std::fs::metadata(path);
    let shown = path.display();
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" => {
            if meta.is_err() {
                create_dir(path, 0o755).map_err(|e| format!("creating {shown}: {e}"))?;
            }
            Ok(())
        }
        "FileOrCreate" => {
            if meta.is_err() {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
                }
                std::fs::File::create(path).map_err(|e| format!("creating {shown}: {e}"))?;
            }
            Ok(())
        }
        "Directory" => match meta {
            Ok(m) if m.is_dir() => Ok(()),
            _ => Err(format!("hostPath type check failed: {shown} is not a directory")),
        },
        "File" => match meta {
            Ok(m) if m.is_file() => Ok(()),
            _ => Err(format!("hostPath type check failed: {shown} is not a file")),
        },
        "Socket" | "CharDevice" | "BlockDevice" => {
            use std::os::unix::fs::FileTypeExt;
            let ok = meta.is_ok_and(|m| {
                let t = m.file_type();
                match kind {
                    "Socket" => t.is_socket(),
                    "CharDevice" => t.is_char_device(),
                    _ => t.is_block_device(),
                }
            });
            if ok { Ok(()) } else { Err(format!("hostPath type check failed: {shown} is not a {kind}")) }
        }
        other => Err(format!("hostPath type \"{other}\" is not supported")),
    }
}

/// Files to project: relative path → (content, mode).
pub type Payload = BTreeMap<String, (Vec<u8>, u32)>;

/// The lifetime a serviceAccountToken projection asks for when it does not say.
const DEFAULT_TOKEN_EXPIRATION_SECONDS: i64 = 3600;

fn mode_or(mode: Option<i32>, default: u32) -> u32 {
    mode.and_then(|m| u32::try_from(m).ok()).unwrap_or(default)
}

/// The files of downwardAPI `items`: each a `fieldRef` of the pod's
/// metadata, as Kubernetes writes them (maps as sorted `key="value"` lines).
pub fn downward_files<'a>(
    pod: &Pod,
    items: impl IntoIterator<Item = &'a DownwardAPIVolumeFile>,
    default_mode: u32,
) -> Result<Payload, String> {
    let meta = &pod.metadata;
    let lines = |map: Option<&BTreeMap<String, String>>| -> String {
        map.into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}\n", serde_json::Value::String(v.clone())))
            .collect::<String>()
            .trim_end_matches('\n')
            .to_string()
    };
    let one = |map: Option<&BTreeMap<String, String>>, path: &str, prefix: &str| -> Option<String> {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(map.and_then(|m| m.get(key)).cloned().unwrap_or_default())
    };
    let mut out = Payload::new();
    for item in items {
        check_relative(&item.path)?;
        let Some(field) = &item.field_ref else {
            return Err(format!("downwardAPI item \"{}\": only fieldRef is supported", item.path));
        };
        let path = field.field_path.as_str();
        let value = match path {
            "metadata.name" => meta.name.clone().unwrap_or_default(),
            "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
            "metadata.uid" => meta.uid.clone().unwrap_or_default(),
            "metadata.labels" => lines(meta.labels.as_ref()),
            "metadata.annotations" => lines(meta.annotations.as_ref()),
            _ => one(meta.labels.as_ref(), path, "metadata.labels['")
                .or_else(|| one(meta.annotations.as_ref(), path, "metadata.annotations['"))
                .ok_or_else(|| format!("unsupported fieldRef fieldPath in a volume: \"{path}\""))?,
        };
        out.insert(item.path.clone(), (value.into_bytes(), mode_or(item.mode, default_mode)));
    }
    Ok(out)
}

fn config_map_payload(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let text = cm.data.iter().flatten().map(|(k, v)| (k.clone(), v.clone().into_bytes()));
    let binary = cm.binary_data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone()));
    text.chain(binary).collect()
}

fn secret_payload(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = s.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())).collect();
    for (k, v) in s.string_data.iter().flatten() {
        out.insert(k.clone(), v.clone().into_bytes());
    }
    out
}

/// The files a configMap/secret volume shows: every key (or just `items`,
/// key → path, each with its own `mode`), with `defaultMode` (0644) else.
/// A missing item key fails unless the volume is `optional`.
pub fn project(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
    optional: bool,
    kind: &str,
) -> Result<Payload, String> {
    let default_mode = default_mode.and_then(|m| u32::try_from(m).ok()).unwrap_or(DEFAULT_FILE_MODE);
    let mut out = Payload::new();
    match items {
        None | Some([]) => {
            for (k, v) in data {
                out.insert(k.clone(), (v.clone(), default_mode));
            }
        }
        Some(items) => {
            for item in items {
                match data.get(&item.key) {
                    Some(v) => {
                        check_relative(&item.path)?;
                        let mode = item.mode.and_then(|m| u32::try_from(m).ok()).unwrap_or(default_mode);
                        out.insert(item.path.clone(), (v.clone(), mode));
                    }
                    None if optional => {}
                    None => return Err(format!("{kind} references non-existent config key: {}", item.key)),
                }
            }
        }
    }
    Ok(out)
}

fn check_relative(path: &str) -> Result<(), String> {
    let p = Path::new(path);
    if path.is_empty() || p.components().any(|c| !matches!(c, Component::Normal(_))) || path.starts_with("..") {
        return Err(format!("invalid path \"{path}\": must be relative and may not contain '..'"));
    }
    Ok(())
}

/// The files currently projected in `dir` (through its `..data` link).
fn read_projection(dir: &Path) -> Option<Payload> {
    let data = dir.join(DATA_LINK);
    std::fs::read_link(&data).ok()?;
    let mut out = Payload::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(data.join(&rel)).ok()?.flatten() {
            let rel = rel.join(entry.file_name());
            let meta = entry.metadata().ok()?;
            if meta.is_dir() {
                stack.push(rel);
            } else {
                let content = std::fs::read(entry.path()).ok()?;
                out.insert(rel.to_string_lossy().into_owned(), (content, meta.permissions().mode() & 0o7777));
            }
        }
    }
    Some(out)
}

/// Projects `files` into `dir` atomically, like Kubernetes' AtomicWriter:
/// the files go to a fresh `..<timestamp>` directory, the `..data` link is
/// switched to it with one rename, and each top-level name is a link
/// through `..data`; readers see the old or the new set, never a mix.
/// Returns whether anything changed.
pub fn write_atomic(dir: &Path, files: &Payload) -> io::Result<bool> {
    if read_projection(dir).as_ref() == Some(files) {
        return Ok(false);
    }
    let old = std::fs::read_link(dir.join(DATA_LINK)).ok();
    let stamp = k8s_openapi::jiff::Timestamp::now();
    let version = format!("..{}_{:09}", stamp.strftime("%Y_%m_%d_%H_%M_%S"), stamp.subsec_nanosecond());
    let target = dir.join(&version);
    std::fs::create_dir_all(&target)?;
    for (rel, (content, mode)) in files {
        let path = target.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, content)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode))?;
    }
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))?;
    let tmp_link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp_link);
    std::os::unix::fs::symlink(&version, &tmp_link)?;
    std::fs::rename(&tmp_link, dir.join(DATA_LINK))?;
    let top: BTreeSet<String> = files.keys().filter_map(|k| k.split('/').next().map(str::to_string)).collect();
    for name in &top {
        let link = dir.join(name);
        if std::fs::read_link(&link).is_err() {
            std::os::unix::fs::symlink(Path::new(DATA_LINK).join(name), &link)?;
        }
    }
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") || top.contains(&name) {
            continue;
        }
        if entry.file_type().is_ok_and(|t| t.is_symlink()) {
            std::fs::remove_file(entry.path())?;
        }
    }
    if let Some(old) = old.filter(|o| o.as_os_str() != version.as_str()) {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(true)
}

/// The bind mounts of `c`: each volumeMount's host path (with `subPath`,
/// created as a directory if missing), read-only if the mount or the
/// volume says so.
pub fn container_mounts(c: &Container, volumes: &PodVolumes) -> Result<Vec<Mount>, ConfigError> {
    let mut out = Vec::new();
    for vm in c.volume_mounts.iter().flatten() {
        let v = volumes.volumes.get(&vm.name).ok_or_else(|| {
            ConfigError(format!("cannot find volume \"{}\" to mount into container \"{}\"", vm.name, c.name))
        })?;
        let mut host = v.path.clone();
        if let Some(sub) = vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            check_relative(sub).map_err(|e| ConfigError(format!("subPath: {e}")))?;
            host = host.join(sub);
            if std::fs::symlink_metadata(&host).is_err() {
                create_dir(&host, 0o777)
                    .map_err(|e| ConfigError(format!("creating subPath {}: {e}", host.display())))?;
            }
        }
        out.push(Mount {
            host_path: host.to_string_lossy().into_owned(),
            container_path: vm.mount_path.clone(),
            read_only: vm.read_only == Some(true) || v.read_only,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::VolumeMount;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            let p = std::env::temp_dir().join(format!("rkubelet-volumes-{}-{}", std::process::id(), fastrand::u64(..)));
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn projection_shows_every_key_with_the_default_mode() {
        let files = project(&data(&[("a", "1"), ("b", "2")]), None, Some(0o600), false, "configmap").unwrap();
        assert_eq!(files["a"], (b"1".to_vec(), 0o600));
        assert_eq!(files.len(), 2);
    }

    #[test]
    fn items_choose_keys_paths_and_modes() {
        let items = [
            KeyToPath { key: "a".into(), path: "conf/a.txt".into(), mode: Some(0o400) },
            KeyToPath { key: "b".into(), path: "b.txt".into(), mode: None },
        ];
        let files =
            project(&data(&[("a", "1"), ("b", "2"), ("c", "3")]), Some(&items), None, false, "configmap").unwrap();
        assert_eq!(files.keys().collect::<Vec<_>>(), ["b.txt", "conf/a.txt"]);
        assert_eq!(files["conf/a.txt"].1, 0o400);
        assert_eq!(files["b.txt"].1, DEFAULT_FILE_MODE);
    }

    #[test]
    fn missing_item_keys_fail_unless_optional() {
        let items = [KeyToPath { key: "x".into(), path: "x".into(), mode: None }];
        assert_eq!(
            project(&data(&[]), Some(&items), None, false, "configmap"),
            Err("configmap references non-existent config key: x".into())
        );
        assert_eq!(project(&data(&[]), Some(&items), None, true, "configmap"), Ok(Payload::new()));
        let escape = [KeyToPath { key: "a".into(), path: "../x".into(), mode: None }];
        assert!(project(&data(&[("a", "1")]), Some(&escape), None, false, "configmap").is_err());
    }

    #[test]
    fn atomic_writes_swap_the_whole_set_and_skip_unchanged_content() {
        let tmp = TempDir::new();
        let dir = &tmp.0;
        let v1: Payload = [("a".to_string(), (b"1".to_vec(), 0o644)), ("sub/b".to_string(), (b"2".to_vec(), 0o600))]
            .into_iter()
            .collect();
        assert!(write_atomic(dir, &v1).unwrap());
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "1");
        assert_eq!(std::fs::read_to_string(dir.join("sub/b")).unwrap(), "2");
        assert!(!write_atomic(dir, &v1).unwrap(), "unchanged content is not rewritten");
        let v2: Payload = [("a".to_string(), (b"changed".to_vec(), 0o644))].into_iter().collect();
        assert!(write_atomic(dir, &v2).unwrap());
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "changed");
        assert!(!dir.join("sub").exists(), "keys that went away disappear");
        let versions = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("..2"))
            .count();
        assert_eq!(versions, 1, "the old version directory is removed");
    }

    #[test]
    fn mounts_resolve_sub_paths_and_read_only() {
        let tmp = TempDir::new();
        let volumes = PodVolumes {
            volumes: BTreeMap::from([
                ("data".to_string(), HostVolume { path: tmp.0.clone(), read_only: false }),
                ("cfg".to_string(), HostVolume { path: tmp.0.join("cfg"), read_only: true }),
            ]),
        };
        let c = Container {
            name: "app".into(),
            volume_mounts: Some(vec![
                VolumeMount {
                    name: "data".into(),
                    mount_path: "/data".into(),
                    sub_path: Some("logs".into()),
                    ..Default::default()
                },
                VolumeMount {
                    name: "data".into(),
                    mount_path: "/ro".into(),
                    read_only: Some(true),
                    ..Default::default()
                },
                VolumeMount { name: "cfg".into(), mount_path: "/etc/cfg".into(), ..Default::default() },
            ]),
            ..Default::default()
        };
        let mounts = container_mounts(&c, &volumes).unwrap();
        assert_eq!(mounts[0].host_path, tmp.0.join("logs").to_string_lossy());
        assert!(tmp.0.join("logs").is_dir(), "a missing subPath is created");
        assert_eq!(mounts.iter().map(|m| m.read_only).collect::<Vec<_>>(), [false, true, true]);
        let bad = Container {
            name: "x".into(),
            volume_mounts: Some(vec![VolumeMount {
                name: "nope".into(),
                mount_path: "/x".into(),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert!(container_mounts(&bad, &volumes).is_err());
    }

    #[test]
    fn downward_files_show_metadata_as_kubernetes_writes_it() {
        let pod: Pod = serde_json::from_value(serde_json::json!({"metadata": {
            "name": "web", "namespace": "ns", "uid": "u1",
            "labels": {"b": "2", "a": "x\"y"}, "annotations": {"note": "hi"}}}))
        .unwrap();
        let item = |path: &str, field: &str, mode: Option<i32>| -> DownwardAPIVolumeFile {
            serde_json::from_value(serde_json::json!({"path": path, "fieldRef": {"fieldPath": field}, "mode": mode}))
                .unwrap()
        };
        let items = [
            item("namespace", "metadata.namespace", None),
            item("labels", "metadata.labels", Some(0o600)),
            item("sub/note", "metadata.annotations['note']", None),
            item("uid", "metadata.uid", None),
        ];
        let files = downward_files(&pod, &items, 0o644).unwrap();
        let text = |p: &str| (String::from_utf8(files[p].0.clone()).unwrap(), files[p].1);
        assert_eq!(text("namespace"), ("ns".into(), 0o644));
        assert_eq!(text("labels"), ("a=\"x\\\"y\"\nb=\"2\"".into(), 0o600));
        assert_eq!(text("sub/note"), ("hi".into(), 0o644));
        assert_eq!(text("uid"), ("u1".into(), 0o644));
        assert!(downward_files(&pod, &[item("x", "spec.nodeName", None)], 0o644).is_err());
        assert!(downward_files(&pod, &[item("../x", "metadata.name", None)], 0o644).is_err());
    }

    #[test]
    fn mountinfo_mount_points_are_unescaped() {
        let text = "36 35 98:0 / /mnt/with\\040space rw - ext3 /dev/x rw\n37 35 0:5 / /proc rw - proc proc rw\n";
        let points = parse_mountinfo(text);
        assert!(points.contains(Path::new("/mnt/with space")));
        assert!(points.contains(Path::new("/proc")));
    }
}
