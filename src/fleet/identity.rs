//! Who a discovered process is, from its cgroup path and its own files, without any
//! API call: its Kubernetes pod (UID, QoS class, cgroup driver) and container (ID,
//! runtime), or a container outside Kubernetes, or a systemd unit; what the node can
//! read of the pod (namespace, pod name, container name); the stable target name and
//! the identity labels.
//!
//! Pure parsers (`parse_*`, `classify_cgroup_path`, `target_name`) are kept apart from
//! the one reader, [`read_pod_view`], which takes a `proc_root` so tests lay out a fake
//! `/proc` in a temporary directory.

use std::fs::File;
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::error::{Error, Result};
use crate::files;

/// A pod's Kubernetes QoS class, as its cgroup parent says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "guaranteed",
            QosClass::Burstable => "burstable",
            QosClass::BestEffort => "besteffort",
        }
    }
}

/// How the kubelet names its cgroups: plain directories (`kubepods/burstable/pod<uid>`)
/// or systemd slices (`kubepods.slice/kubepods-burstable.slice/...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CgroupDriver {
    Cgroupfs,
    Systemd,
}

impl CgroupDriver {
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupDriver::Cgroupfs => "cgroupfs",
            CgroupDriver::Systemd => "systemd",
        }
    }
}

/// The container runtime a cgroup name gives away. Under the cgroupfs driver
/// containerd (and dockershim) name a container's cgroup by its bare ID, which tells
/// no runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerRuntime {
    Containerd,
    CriO,
    Docker,
    Podman,
}

impl ContainerRuntime {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerRuntime::Containerd => "containerd",
            ContainerRuntime::CriO => "cri-o",
            ContainerRuntime::Docker => "docker",
            ContainerRuntime::Podman => "podman",
        }
    }
}

/// The cgroup-name prefixes of container cgroups (systemd scopes `<prefix><id>.scope`;
/// CRI-O under cgroupfs also `crio-<id>`). CRI-O's monitor `crio-conmon-<id>` matches
/// `crio-` but its rest is no ID, so it is, rightly, no container.
const RUNTIME_PREFIXES: [(&str, ContainerRuntime); 4] = [
    ("cri-containerd-", ContainerRuntime::Containerd),
    ("crio-", ContainerRuntime::CriO),
    ("docker-", ContainerRuntime::Docker),
    ("libpod-", ContainerRuntime::Podman),
];

/// A container named by its cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Container {
    /// 64 lowercase hex digits.
    pub id: String,
    pub runtime: Option<ContainerRuntime>,
}

/// A Kubernetes pod's cgroup, and the container's inside it when the path goes that deep.
///
/// The pause (sandbox) container cannot be told from the others by its cgroup under
/// any driver or runtime: it is a container of the pod like the rest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodCgroup {
    /// The pod UID with dashes (the systemd driver writes them as `_`): 36 characters,
    /// or 32 hex digits for a static pod (its UID is the hash of its manifest).
    pub uid: String,
    /// `None` for a cgroupfs path seen from inside another cgroup namespace
    /// (`/../../pod<uid>/<id>`): its QoS parent is above what that reader sees.
    pub qos: Option<QosClass>,
    pub driver: CgroupDriver,
    pub container: Option<Container>,
}

/// What a cgroup path says a process belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Workload {
    Pod(PodCgroup),
    /// A container outside Kubernetes (`/docker/<id>`, `docker-<id>.scope`, `libpod-<id>.scope`).
    Container(Container),
    /// The innermost systemd service (`system.slice/foo.service` gives `foo.service`).
    /// Scopes (login sessions, `init.scope`) are not named: they change every login.
    Unit(String),
    /// None of those: a host process, or a cgroup layout not known here.
    Other,
}

impl Workload {
    /// How much the workload tells, to pick among the lines of `/proc/PID/cgroup`.
    fn rank(&self) -> u8 {
        match self {
            Workload::Pod(_) => 3,
            Workload::Container(_) => 2,
            Workload::Unit(_) => 1,
            Workload::Other => 0,
        }
    }
}

/// A process's identity as its cgroup tells it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CgroupIdentity {
    pub workload: Workload,
    /// The cgroup path it was read from (`None` when every line was the root).
    pub path: Option<String>,
}

impl CgroupIdentity {
    /// The pod, for a process of a Kubernetes pod.
    pub fn pod(&self) -> Option<&PodCgroup> {
        match &self.workload {
            Workload::Pod(p) => Some(p),
            _ => None,
        }
    }

    pub fn is_kubernetes(&self) -> bool {
        self.pod().is_some()
    }

    /// The container, in a pod or outside Kubernetes.
    pub fn container(&self) -> Option<&Container> {
        match &self.workload {
            Workload::Pod(p) => p.container.as_ref(),
            Workload::Container(c) => Some(c),
            _ => None,
        }
    }
}

/// Parses `/proc/PID/cgroup` (v1 `N:controllers:/path` lines, v2 `0::/path`, or both on
/// a hybrid host) into the identity the most telling line gives. Lines are read in the
/// order v1 `memory`, v2, `name=systemd`, the rest; a later line wins only when it
/// tells more (pod > container > unit > other), because on a hybrid host the v2 line
/// can be `/` while the v1 lines carry the pod. Never fails: an unreadable line is
/// skipped, and nothing readable gives [`Workload::Other`].
pub fn parse_cgroup_identity(text: &str) -> CgroupIdentity {
    let mut lines: Vec<(u8, &str)> = text
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            if id.parse::<u32>().is_err() || !path.starts_with('/') {
                return None;
            }
            let order = if controllers.split(',').any(|c| c == "memory") {
                0
            } else if id == "0" && controllers.is_empty() {
                1
            } else if controllers == "name=systemd" {
                2
            } else {
                3
            };
            Some((order, path))
        })
        .collect();
    lines.sort_by_key(|(order, _)| *order);
    let mut best = CgroupIdentity {
        workload: Workload::Other,
        path: lines
            .iter()
            .map(|(_, p)| *p)
            .find(|p| !p.trim_matches('/').is_empty())
            .map(str::to_string),
    };
    for (_, path) in lines {
        let workload = classify_cgroup_path(path);
        if workload.rank() > best.workload.rank() {
            best = CgroupIdentity {
                workload,
                path: Some(path.to_string()),
            };
        }
    }
    best
}

/// What one cgroup path says. Leading `/..` segments (a path outside the reader's
/// cgroup namespace, as a containerised leakwatch sees other pods) stand for the
/// parents it cannot see, and anything below the container's cgroup (CRI-O with crun puts the processes in
/// `crio-<id>.scope/container`). A kubelet `--cgroup-root` or a node that is itself a
/// container (kind: `/docker/<node>/kubepods/...`) only adds segments in front.
pub fn classify_cgroup_path(path: &str) -> Workload {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for i in 0..segs.len() {
        if let Some((uid, qos, driver)) = pod_segment(&segs[..=i]) {
            return Workload::Pod(PodCgroup {
                uid,
                qos,
                driver,
                container: segs.get(i + 1).and_then(|s| container_segment(s)),
            });
        }
    }
    for (i, seg) in segs.iter().enumerate() {
        if let Some(c) = container_segment(seg).filter(|c| c.runtime.is_some()) {
            return Workload::Container(c);
        }
        if *seg == "docker"
            && let Some(id) = segs.get(i + 1).filter(|s| is_container_id(s))
        {
            return Workload::Container(Container {
                id: id.to_string(),
                runtime: Some(ContainerRuntime::Docker),
            });
        }
    }
    segs.iter()
        .rev()
        .find(|s| s.len() > ".service".len() && s.ends_with(".service"))
        .map_or(Workload::Other, |s| Workload::Unit(s.to_string()))
}

/// The pod of the last segment of `segs`, if it is a pod's cgroup: `pod<uid>` under
/// `kubepods[/burstable|/besteffort]` (cgroupfs), or `...kubepods[-qos]-pod<uid>.slice`
/// (systemd, any `--cgroup-root` prefix such as kind's `kubelet-kubepods-...`).
fn pod_segment(segs: &[&str]) -> Option<(String, Option<QosClass>, CgroupDriver)> {
    let (last, parents) = segs.split_last()?;
    if let Some(stem) = last.strip_suffix(".slice") {
        let rest = &stem[stem.rfind("kubepods-")? + "kubepods-".len()..];
        let (qos, uid) = [
            ("burstable-pod", QosClass::Burstable),
            ("besteffort-pod", QosClass::BestEffort),
            ("pod", QosClass::Guaranteed),
        ]
        .into_iter()
        .find_map(|(prefix, qos)| rest.strip_prefix(prefix).map(|uid| (qos, uid)))?;
        let uid = uid.replace('_', "-");
        return is_pod_uid(&uid).then_some((uid, Some(qos), CgroupDriver::Systemd));
    }
    let uid = last.strip_prefix("pod").filter(|u| is_pod_uid(u))?;
    // Behind `..` (another cgroup namespace) `kubepods` itself may be out of sight.
    let qos = match parents {
        [.., "kubepods"] => Some(QosClass::Guaranteed),
        [.., "kubepods" | "..", "burstable"] => Some(QosClass::Burstable),
        [.., "kubepods" | "..", "besteffort"] => Some(QosClass::BestEffort),
        [.., ".."] => None,
        _ => return None,
    };
    Some((uid.to_string(), qos, CgroupDriver::Cgroupfs))
}

/// A container's cgroup name: a runtime's `<prefix><id>[.scope]`, or a bare ID (cgroupfs).
fn container_segment(seg: &str) -> Option<Container> {
    let (body, scope) = match seg.strip_suffix(".scope") {
        Some(body) => (body, true),
        None => (seg, false),
    };
    for (prefix, runtime) in RUNTIME_PREFIXES {
        if let Some(id) = body.strip_prefix(prefix) {
            return is_container_id(id).then(|| Container {
                id: id.to_string(),
                runtime: Some(runtime),
            });
        }
    }
    (!scope && is_container_id(body)).then(|| Container {
        id: body.to_string(),
        runtime: None,
    })
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && is_lower_hex(s)
}

/// A UUID (8-4-4-4-12 hex) or a static pod's 32-hex config hash.
fn is_pod_uid(s: &str) -> bool {
    if s.len() == 32 {
        return is_lower_hex(s);
    }
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && is_lower_hex(g))
}

/// An RFC 1123 DNS label: what namespace and container names are.
fn is_dns_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// An RFC 1123 DNS subdomain: what pod names are.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// What the node can read of a pod from the process's own files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodView {
    /// From the service account volume (`.../serviceaccount/namespace`), when mounted.
    pub namespace: Option<String>,
    /// The pod's hostname, which is its name unless the pod sets `spec.hostname` (a
    /// StatefulSet's is its name too). Not trusted when the process shares the node's
    /// UTS namespace (`hostNetwork` pods carry the node's name) or the hostname is 63
    /// characters long (the kubelet cuts longer pod names to 63).
    pub pod: Option<String>,
    /// From the kubelet's termination-message file bind-mounted into the container:
    /// its source is `<kubelet root>/pods/<pod uid>/containers/<name>/<random>`, seen in
    /// `/proc/PID/mountinfo`. Only with the pod UID the cgroup gives; `None` when the
    /// container sets `terminationMessagePath: ""` or the source is not in view.
    pub container: Option<String>,
}

/// Caps on the files read per process: a hostname and a namespace are one short line;
/// the environment and mount table of a process are rarely over tens of KiB.
const MAX_SMALL_FILE: u64 = 4 << 10;
const MAX_PROC_LIST: u64 = 1 << 20;

/// The service account namespace file, relative to the container's root.
const SERVICE_ACCOUNT_NAMESPACE: &str = "var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Reads what the node can see of `pid`'s pod under `proc_root` (`/proc`, or a fake
/// tree), for a process whose cgroup gave `pod_uid`. Each piece is `None` when it
/// cannot be read (the process ended, no `CAP_SYS_PTRACE` over it, the file is not
/// there, openat2 is missing before Linux 5.6) or does not look like what Kubernetes
/// writes there. Files in the container go through `/proc/PID/root` resolved inside
/// that root (`RESOLVE_IN_ROOT`), so a container's absolute symlinks (Debian's
/// `/var/run -> /run`, or one aimed at the node's files) stay in the container.
pub fn read_pod_view(proc_root: &Path, pid: u32, pod_uid: &str) -> PodView {
    let dir = proc_root.join(pid.to_string());
    let text = |r: Result<Vec<u8>>| match r {
        Ok(bytes) => String::from_utf8(bytes).ok(),
        Err(error) => {
            tracing::debug!(%error, pid, "pod identity: file not read");
            None
        }
    };
    let root = dir.join("root");
    let namespace =
        text(read_in_root(&root, SERVICE_ACCOUNT_NAMESPACE)).and_then(|t| parse_namespace_file(&t));
    let pod = if private_uts(proc_root, pid) {
        text(read_in_root(&root, "etc/hostname"))
            .and_then(|t| pod_name_from_hostname(&t))
            .or_else(|| {
                files::read_capped(&dir.join("environ"), MAX_PROC_LIST, "environ")
                    .ok()
                    .and_then(|env| parse_environ_var(&env, "HOSTNAME"))
                    .and_then(|h| pod_name_from_hostname(&h))
            })
    } else {
        None
    };
    let container = text(files::read_capped(
        &dir.join("mountinfo"),
        MAX_PROC_LIST,
        "mountinfo",
    ))
    .and_then(|t| container_name_from_mountinfo(&t, pod_uid));
    PodView {
        namespace,
        pod,
        container,
    }
}

/// Whether `pid` has a UTS namespace of its own (not the node's): only then is its
/// hostname its pod's. The node's is PID 1's; where PID 1's link cannot be read (a
/// sandbox whose PID 1 is more privileged than leakwatch), leakwatch's own stands in
/// (a DaemonSet with `hostNetwork` shares the node's). Unknown counts as not.
fn private_uts(proc_root: &Path, pid: u32) -> bool {
    let link = |p: &str| std::fs::read_link(proc_root.join(p).join("ns/uts")).ok();
    match (link(&pid.to_string()), link("1").or_else(|| link("self"))) {
        (Some(own), Some(host)) => own != host,
        _ => false,
    }
}

/// Reads the regular file `rel` inside the directory `root` as its own root: `..`
/// and absolute symlinks do not leave it, magic links are refused, and a FIFO or a
/// device is not read (it could block or never end).
fn read_in_root(root: &Path, rel: &str) -> Result<Vec<u8>> {
    let path = root.join(rel);
    let dir = File::open(root).map_err(|e| Error::io("opening", root, e))?;
    let fd = rustix::fs::openat2(
        &dir,
        rel,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| Error::io("opening", &path, e.into()))?;
    let file = File::from(fd);
    let meta = file
        .metadata()
        .map_err(|e| Error::io("reading", &path, e))?;
    if !meta.is_file() {
        return Err(Error::BadFile {
            path,
            reason: "not a regular file".to_string(),
        });
    }
    files::read_capped_file(file, &path, MAX_SMALL_FILE, "a container's small files")
}

/// The value of `key` in `/proc/PID/environ` (NUL-separated `KEY=value`); the last
/// one wins, as in a shell.
pub fn parse_environ_var(environ: &[u8], key: &str) -> Option<String> {
    environ
        .split(|&b| b == 0)
        .filter_map(|kv| {
            let rest = kv.strip_prefix(key.as_bytes())?.strip_prefix(b"=")?;
            std::str::from_utf8(rest).ok()
        })
        .next_back()
        .map(str::to_string)
}

/// The pod name a hostname gives: a DNS subdomain under 63 characters (at 63 it may
/// be a longer pod name cut short).
pub fn pod_name_from_hostname(text: &str) -> Option<String> {
    let name = text.trim();
    (!name.is_empty() && name.len() < 63 && is_dns_subdomain(name)).then(|| name.to_string())
}

/// The namespace in a service account's `namespace` file: one DNS label.
pub fn parse_namespace_file(text: &str) -> Option<String> {
    let ns = text.trim();
    is_dns_label(ns).then(|| ns.to_string())
}

/// The container name from a process's `/proc/PID/mountinfo`: the mount whose root
/// (field 4) is `.../pods/<pod_uid>/containers/<name>/<file>`, the kubelet's
/// termination-message file. `None` when no such mount exists or two names do.
pub fn container_name_from_mountinfo(text: &str, pod_uid: &str) -> Option<String> {
    let marker = format!("/pods/{pod_uid}/containers/");
    let mut found: Option<&str> = None;
    for line in text.lines() {
        let Some(root) = line.split(' ').nth(3) else {
            continue;
        };
        let Some(at) = root.find(&marker) else {
            continue;
        };
        let Some((name, file)) = root[at + marker.len()..].split_once('/') else {
            continue;
        };
        if !is_dns_label(name) || file.is_empty() || file.contains('/') {
            continue;
        }
        match found {
            Some(other) if other != name => return None,
            _ => found = Some(name),
        }
    }
    found.map(str::to_string)
}

/// The separator between a name's parts. Target names must match `[A-Za-z0-9_.:-]+`
/// (they become file names and URL segments), and no namespace, pod or container name
/// holds `_` or `:`, so `ns_pod_container` and `ns_pod:port` read back unambiguously.
pub const NAME_SEPARATOR: char = '_';

/// The stable name of a discovered target: the process serving pprof on `port`,
/// running `exe`. In order:
///
/// | known | name |
/// |---|---|
/// | namespace, pod, container | `ns_pod_container` |
/// | namespace, pod | `ns_pod:port` |
/// | pod UID, container | `uid_container` |
/// | pod UID | `uid:port` |
/// | container outside Kubernetes | `docker_<id[..12]>:port` (the runtime's name) |
/// | systemd unit | `foo.service:port` |
/// | nothing | `exe:port` |
///
/// A restarted container keeps its pod and its name but gets a new container ID, so
/// the ID is never part of a pod's name: the port stands in for an unknown container
/// name (containers of a pod share its network namespace, so their ports differ).
/// A unit or an executable may serve pprof on several ports, hence the port there too.
/// Characters a target name cannot hold (in units and executables) become `_`.
pub fn target_name(identity: &CgroupIdentity, view: &PodView, exe: &str, port: u16) -> String {
    let sep = NAME_SEPARATOR;
    let name = match &identity.workload {
        Workload::Pod(pod) => match (&view.namespace, &view.pod, &view.container) {
            (Some(ns), Some(p), Some(c)) => format!("{ns}{sep}{p}{sep}{c}"),
            (Some(ns), Some(p), None) => format!("{ns}{sep}{p}:{port}"),
            (_, _, Some(c)) => format!("{}{sep}{c}", pod.uid),
            (_, _, None) => format!("{}:{port}", pod.uid),
        },
        Workload::Container(c) => {
            let runtime = c.runtime.map_or("container", ContainerRuntime::as_str);
            format!("{runtime}{sep}{}:{port}", &c.id[..12])
        }
        Workload::Unit(unit) => format!("{unit}:{port}"),
        Workload::Other => {
            let base = exe.rsplit('/').next().filter(|b| !b.is_empty());
            format!("{}:{port}", base.unwrap_or("process"))
        }
    };
    let clean: String = name
        .chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '_' | '.' | ':' | '-' => c,
            _ => '_',
        })
        .collect();
    match clean.strip_prefix('.') {
        Some(rest) => format!("_{rest}"),
        None => clean,
    }
}

/// The identity labels of a discovered target: only those known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityLabels {
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub container: Option<String>,
    pub pod_uid: Option<String>,
    pub container_id: Option<String>,
}

impl IdentityLabels {
    /// The labels of a process with this cgroup identity and pod view. A container
    /// outside Kubernetes has a `container_id` and nothing else.
    pub fn new(identity: &CgroupIdentity, view: &PodView) -> Self {
        let pod = identity.pod();
        let in_pod = |v: &Option<String>| pod.and(v.clone());
        IdentityLabels {
            namespace: in_pod(&view.namespace),
            pod: in_pod(&view.pod),
            container: in_pod(&view.container),
            pod_uid: pod.map(|p| p.uid.clone()),
            container_id: identity.container().map(|c| c.id.clone()),
        }
    }

    /// `(label, value)` pairs in a fixed order, the unknown ones left out.
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("namespace", &self.namespace),
            ("pod", &self.pod),
            ("container", &self.container),
            ("pod_uid", &self.pod_uid),
            ("container_id", &self.container_id),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    const UID: &str = "e03401ab-1ff2-44e3-8260-3d175888e4a7";
    const UID_: &str = "e03401ab_1ff2_44e3_8260_3d175888e4a7";
    const STATIC_UID: &str = "6a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d";
    const ID: &str = "35b97177dada20362ab90d90ac63cd54e8a41cf87bea34f270631b6da17f4a93";
    const NODE: &str = "01fd96f7ad292b02a8317cde4ecb8c7ef3cc06ffdd113f13410e0837eb2b2a20";

    fn pod(
        qos: QosClass,
        driver: CgroupDriver,
        uid: &str,
        runtime: Option<Option<ContainerRuntime>>,
    ) -> Workload {
        Workload::Pod(PodCgroup {
            uid: uid.to_string(),
            qos: Some(qos),
            driver,
            container: runtime.map(|runtime| Container {
                id: ID.to_string(),
                runtime,
            }),
        })
    }

    fn outside(runtime: ContainerRuntime) -> Workload {
        Workload::Container(Container {
            id: ID.to_string(),
            runtime: Some(runtime),
        })
    }

    /// A v1 `/proc/PID/cgroup` with every controller in `path` (as a kubelet's
    /// cgroupfs driver lays them out), under a v2 line `v2`.
    fn v1(path: &str, v2: Option<&str>) -> String {
        let mut text: String = [
            "12:pids",
            "11:hugetlb",
            "10:memory",
            "9:cpu,cpuacct",
            "8:devices",
            "7:blkio",
            "1:name=systemd",
        ]
        .iter()
        .map(|c| format!("{c}:{path}\n"))
        .collect();
        if let Some(v2) = v2 {
            text.push_str(&format!("0::{v2}\n"));
        }
        text
    }

    #[test]
    fn cgroup_paths_of_each_driver_runtime_and_hierarchy() {
        use CgroupDriver::*;
        use ContainerRuntime::*;
        use QosClass::*;
        let sd_burstable =
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice");
        let sd_besteffort = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice"
        );
        let sd_guaranteed = format!("/kubepods.slice/kubepods-pod{UID_}.slice");
        let cases: Vec<(&str, String, Workload)> = vec![
            (
                "v1 cgroupfs containerd burstable",
                v1(&format!("/kubepods/burstable/pod{UID}/{ID}"), None),
                pod(Burstable, Cgroupfs, UID, Some(None)),
            ),
            (
                "v1 cgroupfs besteffort on a hybrid host (0::/)",
                v1(&format!("/kubepods/besteffort/pod{UID}/{ID}"), Some("/")),
                pod(BestEffort, Cgroupfs, UID, Some(None)),
            ),
            (
                "v2 cgroupfs guaranteed",
                format!("0::/kubepods/pod{UID}/{ID}\n"),
                pod(Guaranteed, Cgroupfs, UID, Some(None)),
            ),
            (
                "v1 cgroupfs CRI-O",
                v1(&format!("/kubepods/burstable/pod{UID}/crio-{ID}"), None),
                pod(Burstable, Cgroupfs, UID, Some(Some(CriO))),
            ),
            (
                "v1 cgroupfs CRI-O monitor is no container",
                v1(
                    &format!("/kubepods/burstable/pod{UID}/crio-conmon-{ID}"),
                    None,
                ),
                pod(Burstable, Cgroupfs, UID, None),
            ),
            (
                "v2 systemd containerd burstable",
                format!("0::{sd_burstable}/cri-containerd-{ID}.scope\n"),
                pod(Burstable, Systemd, UID, Some(Some(Containerd))),
            ),
            (
                "v2 systemd containerd guaranteed",
                format!("0::{sd_guaranteed}/cri-containerd-{ID}.scope\n"),
                pod(Guaranteed, Systemd, UID, Some(Some(Containerd))),
            ),
            (
                "v2 systemd CRI-O besteffort",
                format!("0::{sd_besteffort}/crio-{ID}.scope\n"),
                pod(BestEffort, Systemd, UID, Some(Some(CriO))),
            ),
            (
                "v2 systemd CRI-O with crun's container subgroup",
                format!("0::{sd_burstable}/crio-{ID}.scope/container\n"),
                pod(Burstable, Systemd, UID, Some(Some(CriO))),
            ),
            (
                "v2 systemd CRI-O monitor scope",
                format!("0::{sd_burstable}/crio-conmon-{ID}.scope\n"),
                pod(Burstable, Systemd, UID, None),
            ),
            (
                "v1 systemd cri-dockerd",
                v1(&format!("{sd_burstable}/docker-{ID}.scope"), None),
                pod(Burstable, Systemd, UID, Some(Some(Docker))),
            ),
            (
                "v1 hybrid: systemd pod in v1 and v2",
                v1(
                    &format!("{sd_guaranteed}/cri-containerd-{ID}.scope"),
                    Some(&format!("{sd_guaranteed}/cri-containerd-{ID}.scope")),
                ),
                pod(Guaranteed, Systemd, UID, Some(Some(Containerd))),
            ),
            (
                "static pod (32-hex UID)",
                v1(&format!("/kubepods/burstable/pod{STATIC_UID}/{ID}"), None),
                pod(Burstable, Cgroupfs, STATIC_UID, Some(None)),
            ),
            (
                "kind node in Docker, cgroupfs",
                v1(
                    &format!("/docker/{NODE}/kubepods/besteffort/pod{UID}/{ID}"),
                    None,
                ),
                pod(BestEffort, Cgroupfs, UID, Some(None)),
            ),
            (
                "kubelet --cgroup-root=/kubelet, systemd (kind)",
                format!(
                    "0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/\
                     kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{ID}.scope\n"
                ),
                pod(BestEffort, Systemd, UID, Some(Some(Containerd))),
            ),
            (
                "seen from another pod's cgroup namespace",
                format!("0::/../../kubepods-burstable-pod{UID_}.slice/cri-containerd-{ID}.scope\n"),
                pod(Burstable, Systemd, UID, Some(Some(Containerd))),
            ),
            (
                "cgroupfs seen from another pod's cgroup namespace",
                format!("0::/../../pod{UID}/{ID}\n"),
                Workload::Pod(PodCgroup {
                    uid: UID.to_string(),
                    qos: None,
                    driver: Cgroupfs,
                    container: Some(Container {
                        id: ID.to_string(),
                        runtime: None,
                    }),
                }),
            ),
            (
                "cgroupfs seen from a pod of another QoS class",
                format!("0::/../../../besteffort/pod{UID}/{ID}\n"),
                pod(BestEffort, Cgroupfs, UID, Some(None)),
            ),
            (
                "a process in the pod cgroup itself",
                format!("0::{sd_burstable}\n"),
                pod(Burstable, Systemd, UID, None),
            ),
            (
                "a short container ID is no container",
                format!("0::/kubepods/burstable/pod{UID}/35b97177dada\n"),
                pod(Burstable, Cgroupfs, UID, None),
            ),
            (
                "v1 Docker outside Kubernetes",
                v1(&format!("/docker/{ID}"), None),
                outside(Docker),
            ),
            (
                "v2 Docker with the systemd driver",
                format!("0::/system.slice/docker-{ID}.scope\n"),
                outside(Docker),
            ),
            (
                "v2 Podman",
                format!("0::/machine.slice/libpod-{ID}.scope\n"),
                outside(Podman),
            ),
            (
                "v2 rootless Podman",
                format!(
                    "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope\n"
                ),
                outside(Podman),
            ),
            (
                "v2 systemd service",
                "0::/system.slice/containerd.service\n".to_string(),
                Workload::Unit("containerd.service".into()),
            ),
            (
                "v1 systemd service",
                v1("/system.slice/sshd.service", None),
                Workload::Unit("sshd.service".into()),
            ),
            (
                "v2 user service",
                "0::/user.slice/user-1000.slice/user@1000.service/app.slice/api.service\n"
                    .to_string(),
                Workload::Unit("api.service".into()),
            ),
            (
                "a login session scope names no unit",
                "0::/user.slice/user-1000.slice/session-3.scope\n".to_string(),
                Workload::Other,
            ),
            ("PID 1", "0::/init.scope\n".to_string(), Workload::Other),
            ("root", "0::/\n".to_string(), Workload::Other),
            (
                "a sandbox's own hierarchy",
                "4:memory:/process_api/27b38e555f33360c78944f1d58448685\n0::/\n".to_string(),
                Workload::Other,
            ),
            (
                "kubepods path with an upper-case UID",
                format!("0::/kubepods/burstable/pod{}/{ID}\n", UID.to_uppercase()),
                Workload::Other,
            ),
            (
                "a pod segment outside kubepods",
                format!("0::/other/burstable/pod{UID}/{ID}\n"),
                Workload::Other,
            ),
        ];
        for (name, text, want) in cases {
            let got = parse_cgroup_identity(&text);
            assert_eq!(got.workload, want, "{name}: {text}");
            assert_eq!(
                got.is_kubernetes(),
                matches!(want, Workload::Pod(_)),
                "{name}"
            );
        }
    }

    #[test]
    fn the_path_kept_is_the_one_that_told() {
        let text = format!(
            "4:memory:/kubepods/pod{UID}/{ID}\n1:name=systemd:/system.slice/kubelet.service\n0::/\n"
        );
        let got = parse_cgroup_identity(&text);
        assert_eq!(
            got.path.as_deref(),
            Some(&*format!("/kubepods/pod{UID}/{ID}"))
        );
        let other = parse_cgroup_identity("4:memory:/process_api/abc\n0::/\n");
        assert_eq!(other.path.as_deref(), Some("/process_api/abc"));
        assert_eq!(parse_cgroup_identity("0::/\n").path, None);
    }

    #[test]
    fn garbage_is_other_and_never_panics() {
        let weird = [
            "",
            "\n\n",
            "nonsense",
            "x:y:z",
            "0::",
            "0::kubepods/burstable",
            "-1:memory:/kubepods/pod",
            "0::/kubepods-é.slice/kubepods-pod.slice",
            "0::/kubepods.slice/kubepods-burstable-pod.slice/cri-containerd-.scope",
            "0::/docker/",
            "0::/.service",
            "0::/../../..",
            "0::/kubepods/pod/",
            "\u{0}:\u{0}:\u{0}",
        ];
        for text in weird {
            assert_eq!(
                parse_cgroup_identity(text).workload,
                Workload::Other,
                "{text:?}"
            );
        }
    }

    #[test]
    fn this_machine_is_not_kubernetes() {
        let text = std::fs::read_to_string("/proc/self/cgroup").expect("/proc/self/cgroup");
        let got = parse_cgroup_identity(&text);
        assert!(!got.is_kubernetes(), "{text}\n{got:?}");
    }

    #[test]
    fn small_file_parsers() {
        let env = b"PATH=/usr/bin\0HOSTNAME=web-1\0HOME=/\0HOSTNAME=web-2\0HOSTNAMEX=no\0";
        assert_eq!(parse_environ_var(env, "HOSTNAME").as_deref(), Some("web-2"));
        assert_eq!(parse_environ_var(env, "HOST"), None);
        assert_eq!(parse_environ_var(b"", "HOSTNAME"), None);
        let long = "a".repeat(63);
        let hostnames: [(&str, Option<&str>); 7] = [
            ("web-7d9f8c6b5-x2x9k\n", Some("web-7d9f8c6b5-x2x9k")),
            ("db-0", Some("db-0")),
            ("api.v2-0", Some("api.v2-0")),
            (&long, None),
            ("Web", None),
            ("", None),
            ("a b", None),
        ];
        for (text, want) in hostnames {
            assert_eq!(pod_name_from_hostname(text).as_deref(), want, "{text:?}");
        }
        let namespaces: [(&str, Option<&str>); 5] = [
            ("shop", Some("shop")),
            ("kube-system\n", Some("kube-system")),
            ("a.b", None),
            ("-x", None),
            ("", None),
        ];
        for (text, want) in namespaces {
            assert_eq!(parse_namespace_file(text).as_deref(), want, "{text:?}");
        }
    }

    fn termination_log(uid: &str, name: &str) -> String {
        format!(
            "1210 1190 259:1 /var/lib/kubelet/pods/{uid}/containers/{name}/2c6a3f1e \
             /dev/termination-log rw,relatime - ext4 /dev/root rw\n"
        )
    }

    #[test]
    fn container_name_from_the_termination_log_mount() {
        let base = "1190 1100 0:320 / / rw,relatime master:1 - overlay overlay rw\n\
                    1200 1190 259:1 /var/lib/kubelet/pods/e03401ab-1ff2-44e3-8260-3d175888e4a7/etc-hosts \
                    /etc/hosts rw - ext4 /dev/root rw\n";
        let own_fs = format!(
            "1211 1190 259:2 /pods/{UID}/containers/api/9f00aa11 /dev/termination-log rw - xfs /dev/sdb rw\n"
        );
        let cases: Vec<(&str, String, Option<&str>)> = vec![
            (
                "kubelet root on /",
                format!("{base}{}", termination_log(UID, "app")),
                Some("app"),
            ),
            (
                "kubelet root its own filesystem",
                format!("{base}{own_fs}"),
                Some("api"),
            ),
            ("no termination log", base.to_string(), None),
            (
                "another pod's UID",
                termination_log("11111111-2222-3333-4444-555555555555", "app"),
                None,
            ),
            (
                "two names: ambiguous",
                format!(
                    "{}{}",
                    termination_log(UID, "app"),
                    termination_log(UID, "side")
                ),
                None,
            ),
            (
                "the same one twice",
                format!(
                    "{}{}",
                    termination_log(UID, "app"),
                    termination_log(UID, "app")
                ),
                Some("app"),
            ),
            (
                "a directory under the container's dir is not its log",
                termination_log(UID, "app/x"),
                None,
            ),
        ];
        for (name, text, want) in cases {
            assert_eq!(
                container_name_from_mountinfo(&text, UID).as_deref(),
                want,
                "{name}"
            );
        }
    }

    fn identity(workload: Workload) -> CgroupIdentity {
        CgroupIdentity {
            workload,
            path: None,
        }
    }

    fn view(ns: Option<&str>, pod: Option<&str>, container: Option<&str>) -> PodView {
        PodView {
            namespace: ns.map(Into::into),
            pod: pod.map(Into::into),
            container: container.map(Into::into),
        }
    }

    #[test]
    fn target_names_and_labels() {
        let in_pod = identity(pod(
            QosClass::Burstable,
            CgroupDriver::Systemd,
            UID,
            Some(Some(ContainerRuntime::Containerd)),
        ));
        let all = [
            ("namespace", "shop"),
            ("pod", "web-1"),
            ("container", "app"),
            ("pod_uid", UID),
            ("container_id", ID),
        ];
        let uid_only = [("pod_uid", UID), ("container_id", ID)];
        // (case, identity, pod view, executable, name, labels)
        type Case<'a> = (
            &'a str,
            CgroupIdentity,
            PodView,
            &'a str,
            String,
            Vec<(&'a str, &'a str)>,
        );
        let cases: Vec<Case> = vec![
            (
                "all known",
                in_pod.clone(),
                view(Some("shop"), Some("web-1"), Some("app")),
                "/app",
                "shop_web-1_app".into(),
                all.to_vec(),
            ),
            (
                "no container name",
                in_pod.clone(),
                view(Some("shop"), Some("web-1"), None),
                "/app",
                "shop_web-1:6060".into(),
                vec![
                    ("namespace", "shop"),
                    ("pod", "web-1"),
                    ("pod_uid", UID),
                    ("container_id", ID),
                ],
            ),
            (
                "container name without the pod's",
                in_pod.clone(),
                view(None, None, Some("app")),
                "/app",
                format!("{UID}_app"),
                vec![("container", "app"), ("pod_uid", UID), ("container_id", ID)],
            ),
            (
                "the cgroup alone",
                in_pod.clone(),
                PodView::default(),
                "/app",
                format!("{UID}:6060"),
                uid_only.to_vec(),
            ),
            (
                "Docker outside Kubernetes",
                identity(outside(ContainerRuntime::Docker)),
                view(Some("ignored"), Some("ignored"), None),
                "/app",
                "docker_35b97177dada:6060".into(),
                vec![("container_id", ID)],
            ),
            (
                "a templated systemd service",
                identity(Workload::Unit("worker@1.service".into())),
                PodView::default(),
                "/usr/bin/worker",
                "worker_1.service:6060".into(),
                vec![],
            ),
            (
                "a host process",
                identity(Workload::Other),
                PodView::default(),
                "/opt/my app/.svc",
                "_svc:6060".into(),
                vec![],
            ),
            (
                "no executable known",
                identity(Workload::Other),
                PodView::default(),
                "",
                "process:6060".into(),
                vec![],
            ),
        ];
        for (name, id, v, exe, want_name, want_labels) in cases {
            assert_eq!(target_name(&id, &v, exe, 6060), want_name, "{name}");
            assert_eq!(IdentityLabels::new(&id, &v).pairs(), want_labels, "{name}");
        }
    }

    #[test]
    fn a_restarted_container_keeps_its_name() {
        let before = parse_cgroup_identity(&format!("0::/kubepods/burstable/pod{UID}/{ID}\n"));
        let after = parse_cgroup_identity(&format!("0::/kubepods/burstable/pod{UID}/{NODE}\n"));
        assert_ne!(before.container(), after.container());
        for v in [
            view(Some("shop"), Some("web-1"), Some("app")),
            view(None, None, None),
        ] {
            assert_eq!(
                target_name(&before, &v, "/app", 6060),
                target_name(&after, &v, "/app", 6060)
            );
        }
    }

    /// One process of a fake `/proc`: its files, written under `proc_root/pid`.
    fn lay_out(proc_root: &Path, pid: u32, uts: &str, cgroup: &str, files: &[(&str, &str)]) {
        let dir = proc_root.join(pid.to_string());
        std::fs::create_dir_all(dir.join("ns")).unwrap();
        symlink(uts, dir.join("ns/uts")).unwrap();
        std::fs::write(dir.join("cgroup"), cgroup).unwrap();
        for (rel, text) in files {
            let path = dir.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    }

    /// The service account volume as the kubelet's atomic writer lays it out (relative
    /// symlinks through `..data`), under `/run` with Debian's absolute `/var/run -> /run`.
    fn service_account(container_root: &Path, namespace: &str) {
        let sa = container_root.join("run/secrets/kubernetes.io/serviceaccount");
        let stamp = "..2026_12_07_03_00_00.000000001";
        std::fs::create_dir_all(sa.join(stamp)).unwrap();
        std::fs::write(sa.join(stamp).join("namespace"), namespace).unwrap();
        symlink(stamp, sa.join("..data")).unwrap();
        symlink("..data/namespace", sa.join("namespace")).unwrap();
        std::fs::create_dir_all(container_root.join("var")).unwrap();
        symlink("/run", container_root.join("var/run")).unwrap();
    }

    #[test]
    fn golden_fake_proc_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let proc_root = tmp.path();
        let host_uts = "uts:[4026531838]";
        lay_out(proc_root, 1, host_uts, "0::/init.scope\n", &[]);
        let sd_pod =
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice");
        let in_pod = v1(&format!("{sd_pod}/cri-containerd-{ID}.scope"), Some("/"));
        let mounts = termination_log(UID, "app");
        // A pod with everything in view.
        lay_out(
            proc_root,
            4242,
            "uts:[4026532201]",
            &in_pod,
            &[
                ("root/etc/hostname", "web-7d9f8c6b5-x2x9k\n"),
                ("environ", "PATH=/bin\0HOSTNAME=from-env\0"),
                ("mountinfo", &mounts),
            ],
        );
        service_account(&proc_root.join("4242/root"), "shop\n");
        // Its hostname an absolute symlink climbing out: resolved in the container's
        // root, where the target exists (the node has no such file).
        lay_out(
            proc_root,
            4343,
            "uts:[4026532202]",
            &in_pod,
            &[
                ("environ", "PATH=/bin\0"),
                ("root/etc/real-name", "inside-1\n"),
            ],
        );
        assert!(!Path::new("/etc/real-name").exists());
        symlink(
            "/../../../../../etc/real-name",
            proc_root.join("4343/root/etc/hostname"),
        )
        .unwrap();
        // Its hostname a FIFO: not read (it would block), HOSTNAME instead.
        lay_out(
            proc_root,
            4444,
            "uts:[4026532203]",
            &in_pod,
            &[("environ", "HOSTNAME=db-0\0")],
        );
        std::fs::create_dir_all(proc_root.join("4444/root/etc")).unwrap();
        let fifo = std::process::Command::new("mkfifo")
            .arg(proc_root.join("4444/root/etc/hostname"))
            .status()
            .unwrap();
        assert!(fifo.success());
        // hostNetwork: the node's UTS namespace, so its hostname is the node's.
        lay_out(
            proc_root,
            4545,
            host_uts,
            &in_pod,
            &[
                ("root/etc/hostname", "node-a\n"),
                ("environ", "HOSTNAME=node-a\0"),
            ],
        );
        // A systemd service and a host process.
        lay_out(
            proc_root,
            5000,
            host_uts,
            "0::/system.slice/api.service\n",
            &[],
        );
        lay_out(
            proc_root,
            5001,
            host_uts,
            "4:memory:/process_api/27b38e55\n0::/\n",
            &[],
        );

        let mut out = String::new();
        for pid in [4242, 4343, 4444, 4545, 5000, 5001] {
            let text = std::fs::read_to_string(proc_root.join(format!("{pid}/cgroup"))).unwrap();
            let id = parse_cgroup_identity(&text);
            let view = id
                .pod()
                .map(|p| read_pod_view(proc_root, pid, &p.uid))
                .unwrap_or_default();
            let labels: Vec<String> = IdentityLabels::new(&id, &view)
                .pairs()
                .iter()
                .map(|(k, v)| format!("{k}={}", v.get(..12).unwrap_or(v)))
                .collect();
            out.push_str(&format!(
                "{pid} {} {}\n",
                target_name(&id, &view, "/usr/local/bin/server", 6060),
                labels.join(",")
            ));
        }
        let want = format!(
            "4242 shop_web-7d9f8c6b5-x2x9k_app namespace=shop,pod=web-7d9f8c6b,container=app,pod_uid=e03401ab-1ff,container_id=35b97177dada\n\
             4343 {UID}:6060 pod=inside-1,pod_uid=e03401ab-1ff,container_id=35b97177dada\n\
             4444 {UID}:6060 pod=db-0,pod_uid=e03401ab-1ff,container_id=35b97177dada\n\
             4545 {UID}:6060 pod_uid=e03401ab-1ff,container_id=35b97177dada\n\
             5000 api.service:6060 \n\
             5001 server:6060 \n"
        );
        assert_eq!(out, want);
    }

    /// The real `/proc`: a container root reached through the `/proc/PID/root` magic
    /// link is read like any directory, and this process is no pod of anyone's.
    #[test]
    fn real_proc_root() {
        let pid = std::process::id();
        let root = PathBuf::from(format!("/proc/{pid}/root"));
        let want = std::fs::read("/etc/hostname").ok();
        assert_eq!(read_in_root(&root, "etc/hostname").ok(), want);
        assert!(read_in_root(&root, "proc/self/root/etc/hostname").is_err());
        let view = read_pod_view(Path::new("/proc"), pid, UID);
        assert_eq!(view.namespace, None);
        assert_eq!(view.container, None);
    }
}
