//! The Kubernetes examples in deploy/kubernetes/: every manifest validated against the
//! Kubernetes JSON schemas (kubernetes-validate, offline, strict), every embedded
//! leakwatch config parsed by `Config::from_yaml` and checked against the manifests
//! around it, and the Prometheus jobs checked by promtool.

use std::path::{Path, PathBuf};
use std::process::Command;

use leakwatch::config::{Config, HeapFormat};
use serde::Deserialize;
use serde_norway::Value;

fn k8s_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

/// Every `.yaml` under deploy/kubernetes, sorted.
fn manifests() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![k8s_dir()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The documents of a multi-document YAML file.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

fn all_documents() -> Vec<(String, Value)> {
    manifests()
        .iter()
        .flat_map(|p| {
            let rel = p.strip_prefix(k8s_dir()).unwrap().display().to_string();
            documents(p).into_iter().map(move |d| (rel.clone(), d))
        })
        .collect()
}

/// The document of `kind` named `name`.
fn find(kind: &str, name: &str) -> Value {
    all_documents()
        .into_iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/kubernetes"))
}

fn config_of(configmap: &str, key: &str) -> String {
    find("ConfigMap", configmap)["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("ConfigMap {configmap} has no data.{key}"))
        .to_string()
}

fn container<'a>(pod_spec: &'a Value, name: &str) -> &'a Value {
    pod_spec["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| s.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// kubernetes-validate: `$LEAKWATCH_K8S_VALIDATE`, the venv scripts/install-test-deps
/// makes, or PATH.
fn validator() -> PathBuf {
    if let Ok(p) = std::env::var("LEAKWATCH_K8S_VALIDATE") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from("/opt/leakwatch-k8s/bin/kubernetes-validate");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("kubernetes-validate")
}

#[test]
fn manifests_pass_strict_kubernetes_schema_validation() {
    let files = manifests();
    let docs = all_documents();
    let mut kinds: Vec<String> = docs
        .iter()
        .map(|(f, d)| {
            format!(
                "{f} {}/{}",
                d["kind"].as_str().unwrap().to_lowercase(),
                d["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "daemonset/configmap.yaml configmap/leakwatch-node",
            "daemonset/daemonset.yaml daemonset/leakwatch-node",
            "daemonset/daemonset.yaml serviceaccount/leakwatch-node",
            "daemonset/podmonitor.yaml podmonitor/leakwatch-node",
            "daemonset/prometheus.yaml configmap/prometheus-leakwatch-node",
            "daemonset/rules-configmap.yaml configmap/prometheus-leakwatch-node-rules",
            "daemonset/rules.yaml prometheusrule/leakwatch-node",
            "probe/configmap.yaml configmap/leakwatch-probe",
            "probe/deployment.yaml deployment/leakwatch-probe",
            "probe/deployment.yaml service/leakwatch-probe",
            "probe/prometheus.yaml configmap/prometheus-leakwatch",
            "probe/sharded.yaml configmap/leakwatch-shard",
            "probe/sharded.yaml service/leakwatch-shard",
            "probe/sharded.yaml statefulset/leakwatch-shard",
            "sidecar/configmap.yaml configmap/orders-leakwatch",
            "sidecar/deployment-host-cgroup.yaml configmap/orders-leakwatch-cgroup",
            "sidecar/deployment-host-cgroup.yaml deployment/orders",
            "sidecar/deployment.yaml deployment/orders",
            "sidecar/service.yaml service/orders-leakwatch",
        ]
    );
    // The Prometheus Operator's CRDs are not in the validator's schemas:
    // podmonitor_selects_the_daemonset_pods and
    // daemonset_prometheusrule_fields_and_groups_pass_promtool check those.
    let is_crd = |d: &Value| {
        d["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("monitoring.coreos.com/"))
    };
    let files: Vec<PathBuf> = files
        .into_iter()
        .filter(|f| !documents(f).iter().any(is_crd))
        .collect();
    let docs: Vec<_> = docs.into_iter().filter(|(_, d)| !is_crd(d)).collect();
    // The oldest version the examples support (pod-index label: 1.28) and the newest
    // schemas the validator bundles. Strict: unknown fields are errors.
    for version in ["1.29.0", "1.37.0"] {
        let out = Command::new(validator())
            .args(["--strict", "-k", version])
            .args(&files)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "running {}: {e}; install it with scripts/install-test-deps \
                     (pip install kubernetes-validate) or set LEAKWATCH_K8S_VALIDATE",
                    validator().display()
                )
            });
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "kubernetes-validate {version} failed:\n{stdout}\n{stderr}"
        );
        let passed = stdout
            .lines()
            .filter(|l| l.starts_with("INFO") && l.contains(" passed for resource "))
            .count();
        assert_eq!(
            passed,
            docs.len(),
            "{version}: every document validated:\n{stdout}"
        );
    }
}

#[test]
fn validator_rejects_an_unknown_field() {
    // The validation above means something only if the validator has its schemas here
    // (offline) and strict mode catches a misspelt key.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(k8s_dir().join("sidecar/deployment.yaml"))
        .unwrap()
        .replace(
            "shareProcessNamespace: true",
            "shareProcessNamespaces: true",
        );
    std::fs::write(&bad, text).unwrap();
    let out = Command::new(validator())
        .args(["--strict"])
        .arg(&bad)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("'shareProcessNamespaces' was unexpected"),
        "{stdout}"
    );
}

#[test]
fn sidecar_config_matches_its_pod() {
    let cfg = Config::from_yaml(&config_of("orders-leakwatch", "leakwatch.yml")).unwrap();
    // Both sidecar variants name their Deployment `orders`: take this file's.
    let deploy = documents(&k8s_dir().join("sidecar/deployment.yaml")).remove(0);
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["shareProcessNamespace"].as_bool(), Some(true));

    assert_eq!(cfg.targets.len(), 1);
    let t = &cfg.targets[0];
    assert_eq!(t.name, "orders");
    assert_eq!(t.url.as_str(), "http://127.0.0.1:6060/");
    assert_eq!(cfg.system.kernel_log, "off");
    assert_eq!(cfg.system.proc_root, Path::new("/proc"));

    // The process regex finds the service's cmdline (command + args, space-joined).
    let svc = container(pod, "orders");
    let cmdline = [strings(&svc["command"]), strings(&svc["args"])]
        .concat()
        .join(" ");
    assert_eq!(cmdline, "/app/orders -listen :8080 -pprof 127.0.0.1:6060");
    let re = regex::Regex::new(t.process.as_deref().unwrap()).unwrap();
    assert!(re.is_match(&cmdline));
    // ... and not leakwatch's own cmdline.
    let lw = container(pod, "leakwatch");
    assert!(!re.is_match(&strings(&lw["args"]).join(" ")));
    // pprof is served on the loopback the target URL names.
    assert!(cmdline.contains("127.0.0.1:6060"));

    // memory_limit is the service container's memory limit (512Mi).
    assert_eq!(svc["resources"]["limits"]["memory"].as_str(), Some("512Mi"));
    assert_eq!(t.memory_limit, Some(512 * 1024 * 1024));

    // Same UID for both containers (environ is owner-readable only).
    assert_eq!(pod["securityContext"]["runAsUser"].as_u64(), Some(10760));
    for c in [svc, lw] {
        assert!(c["securityContext"]["runAsUser"].is_null());
    }

    // The listen port is the container port the Service targets and annotates.
    assert_eq!(cfg.listen.unwrap().port(), 10760);
    assert_eq!(lw["ports"][0]["containerPort"].as_u64(), Some(10760));
    assert!(strings(&lw["args"]).contains(&"--web.listen-address=0.0.0.0:10760".to_string()));
    let service = find("Service", "orders-leakwatch");
    assert_eq!(
        service["metadata"]["annotations"]["prometheus.io/port"].as_str(),
        Some("10760")
    );
    assert_eq!(
        service["spec"]["ports"][0]["targetPort"].as_str(),
        lw["ports"][0]["name"].as_str()
    );
    let mount = &lw["volumeMounts"][0];
    assert_eq!(mount["mountPath"].as_str(), Some("/etc/leakwatch"));
    assert_eq!(
        pod["volumes"][0]["configMap"]["name"].as_str(),
        Some("orders-leakwatch")
    );
}

#[test]
fn host_cgroup_variant_renders_a_valid_config() {
    let doc = documents(&k8s_dir().join("sidecar/deployment-host-cgroup.yaml"));
    let pod = &doc[1]["spec"]["template"]["spec"];
    let template = config_of("orders-leakwatch-cgroup", "leakwatch.yml.tmpl");
    // What the init container's `tr - _` + sed produce for a pod UID.
    let uid = "5f1c8a2e-3b7d-4c1e-9a0b-2d4e6f8a1c3e";
    let rendered = template.replace("@POD_UID_UNDERSCORE@", &uid.replace('-', "_"));
    let script = strings(&pod["initContainers"][0]["command"]).join(" ");
    assert!(script.contains("tr - _") && script.contains("@POD_UID_UNDERSCORE@"));
    assert_eq!(
        pod["initContainers"][0]["env"][0]["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("metadata.uid")
    );

    let cfg = Config::from_yaml(&rendered).unwrap();
    let t = &cfg.targets[0];
    assert_eq!(
        t.cgroup.as_deref(),
        Some(
            "/kubepods.slice/kubepods-burstable.slice/\
             kubepods-burstable-pod5f1c8a2e_3b7d_4c1e_9a0b_2d4e6f8a1c3e.slice"
        )
    );
    // cgroup_root is where the hostPath is mounted, read-only.
    let lw = container(pod, "leakwatch");
    let mount = lw["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["name"].as_str() == Some("host-cgroup"))
        .unwrap();
    assert_eq!(
        cfg.system.cgroup_root,
        Path::new(mount["mountPath"].as_str().unwrap())
    );
    assert_eq!(mount["readOnly"].as_bool(), Some(true));
    // The template itself (placeholder in place) is still a valid config: a typo in
    // the template fails here rather than in the pod.
    Config::from_yaml(&template).unwrap();
}

#[test]
fn probe_config_allows_pod_ips_only() {
    let cfg = Config::from_yaml(&config_of("leakwatch-probe", "leakwatch.yml")).unwrap();
    assert!(cfg.targets.is_empty());
    let url = |s: &str| reqwest::Url::parse(s).unwrap();
    for ok in [
        "http://10.244.3.17:6060",
        "http://10.244.0.5:6061/",
        "http://10.244.255.254:6060",
    ] {
        assert!(cfg.probe_allowed(&url(ok)), "{ok} should be allowed");
    }
    for refused in [
        "http://10.96.0.1:443",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.244.3.17:6060/../../admin",
        "http://10.244.3.17:8080",
        "https://10.244.3.17:6060",
        "http://10.244.3.17.evil.example:6060",
        "http://kubernetes.default.svc:6060",
    ] {
        assert!(
            !cfg.probe_allowed(&url(refused)),
            "{refused} should be refused"
        );
    }
    let large = cfg
        .probe_target(url("http://10.244.3.17:6060"), "large")
        .unwrap();
    assert_eq!(large.timeout, std::time::Duration::from_secs(30));
    assert_eq!(large.max_body_bytes, 256 * 1024 * 1024);
    let text = cfg
        .probe_target(url("http://10.244.3.17:6060"), "text")
        .unwrap();
    assert_eq!(text.heap_format, HeapFormat::Text);
    let default = cfg
        .probe_target(url("http://10.244.3.17:6060"), "default")
        .unwrap();
    assert_eq!(default.heap_format, HeapFormat::Proto);
    assert_eq!(default.max_body_bytes, 64 * 1024 * 1024);
    assert!(
        cfg.probe_target(url("http://10.244.3.17:6060"), "nope")
            .is_err()
    );
}

/// Prometheus' hashmod, computed by another implementation (Python's hashlib): md5 of
/// the value, last 8 bytes big-endian, modulo `n`.
fn python_hashmod(values: &[String], n: u64) -> Vec<u64> {
    let script = format!(
        "import hashlib,sys\nfor v in sys.stdin.read().split('\\n'):\n    \
         print(int.from_bytes(hashlib.md5(v.encode()).digest()[8:], 'big') % {n})"
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(values.join("\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

#[test]
fn shards_partition_the_targets_like_prometheus_hashmod() {
    let cfg = Config::from_yaml(&config_of("leakwatch-shard", "leakwatch.yml")).unwrap();
    let sts = find("StatefulSet", "leakwatch-shard");
    let replicas = sts["spec"]["replicas"].as_u64().unwrap();
    assert_eq!(replicas, 3);
    let lw = container(&sts["spec"]["template"]["spec"], "leakwatch");
    assert!(strings(&lw["args"]).contains(&format!("--shard=$(SHARD)/{replicas}")));
    assert_eq!(
        lw["env"][0]["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("metadata.labels['apps.kubernetes.io/pod-index']")
    );

    let names: Vec<String> = cfg.targets.iter().map(|t| t.name.clone()).collect();
    assert_eq!(names.len(), 8);
    let expected = python_hashmod(&names, replicas);
    let mut seen = Vec::new();
    for shard in 0..replicas {
        let kept: Vec<String> = cfg
            .clone()
            .shard(shard, replicas)
            .unwrap()
            .targets
            .into_iter()
            .map(|t| t.name)
            .collect();
        let want: Vec<String> = names
            .iter()
            .zip(&expected)
            .filter(|(_, s)| **s == shard)
            .map(|(n, _)| n.clone())
            .collect();
        assert_eq!(kept, want, "shard {shard}/{replicas}");
        seen.extend(kept);
    }
    seen.sort();
    let mut all = names.clone();
    all.sort();
    assert_eq!(seen, all, "every target in exactly one shard");
    // The example list spreads over all three shards (else it shows nothing).
    for shard in 0..replicas {
        assert!(
            expected.contains(&shard),
            "shard {shard} is empty: {expected:?}"
        );
    }
}

/// `promtool check config` on a Prometheus config of the examples. Debian's promtool is
/// built without Kubernetes service discovery, so the check runs on the same jobs with a
/// static target in place of kubernetes_sd_configs: everything else (relabel rules,
/// regexes, paths, rule files) is checked as written. `rule_file` gives the text of each
/// rule file the config names.
fn promtool_check_config(mut prom: Value, rule_file: impl Fn(&str) -> String) {
    let dir = tempfile::tempdir().unwrap();
    for f in strings(&prom["rule_files"]) {
        std::fs::write(dir.path().join(&f), rule_file(&f)).unwrap();
    }
    for job in prom["scrape_configs"].as_sequence_mut().unwrap() {
        let m = job.as_mapping_mut().unwrap();
        assert!(m.remove("kubernetes_sd_configs").is_some());
        m.insert(
            Value::from("static_configs"),
            serde_norway::from_str("[{targets: ['10.244.3.17:6060']}]").unwrap(),
        );
    }
    let file = dir.path().join("prometheus.yml");
    std::fs::write(&file, serde_norway::to_string(&prom).unwrap()).unwrap();
    let out = Command::new("promtool")
        .args(["check", "config"])
        .arg(&file)
        .output()
        .expect("promtool (scripts/install-test-deps installs it)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn prometheus_jobs_pass_promtool() {
    let text = config_of("prometheus-leakwatch", "prometheus.yml");
    let prom: Value = serde_norway::from_str(&text).unwrap();
    let jobs = prom["scrape_configs"].as_sequence().unwrap();
    let names: Vec<&str> = jobs
        .iter()
        .map(|j| j["job_name"].as_str().unwrap())
        .collect();
    // No hashmod split of /probe: a probe keeps no history, so no replica owns a target
    // for it (the shards' split is for configured targets: sharded.yaml).
    assert_eq!(names, ["leakwatch-probe", "leakwatch-shards"]);
    assert!(!text.contains("hashmod"));
    assert_eq!(jobs[0]["metrics_path"].as_str(), Some("/probe"));
    promtool_check_config(prom, shipped_rule_file);
}

/// A relabel rule of a Prometheus job (snake_case keys) or of a PodMonitor (camelCase).
fn relabels(rules: &Value, target: &str) -> Vec<String> {
    rules
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|r| {
            r["target_label"].as_str() == Some(target) || r["targetLabel"].as_str() == Some(target)
        })
        .map(|r| {
            let src = if r["source_labels"].is_null() {
                &r["sourceLabels"]
            } else {
                &r["source_labels"]
            };
            strings(src).join(";")
        })
        .collect()
}

/// Every leakwatch that watches targets (node agent, sidecars, shards; not the
/// stateless /probe replicas behind one Service) links to its own pod: its
/// --web.external-url is the pod's IP (the downward API's status.podIP, expanded by
/// Kubernetes) and its container port, and is a URL leakwatch accepts once expanded.
#[test]
fn watching_pods_link_to_themselves() {
    let mut checked = Vec::new();
    for (file, d) in all_documents() {
        let Some(containers) = d["spec"]["template"]["spec"]["containers"].as_sequence() else {
            continue;
        };
        for c in containers {
            let image = c["image"].as_str().unwrap_or_default();
            if !image.starts_with("registry.example.com/leakwatch:")
                || file == "probe/deployment.yaml"
            {
                continue;
            }
            let args = strings(&c["args"]);
            let port = c["ports"][0]["containerPort"].as_u64().unwrap();
            let external = args
                .iter()
                .find_map(|a| a.strip_prefix("--web.external-url="))
                .unwrap_or_else(|| panic!("{file}: no --web.external-url: {args:?}"));
            assert_eq!(external, format!("http://$(POD_IP):{port}"), "{file}");
            assert!(
                args.contains(&format!("--web.listen-address=0.0.0.0:{port}")),
                "{file}: {args:?}"
            );
            let pod_ip = c["env"]
                .as_sequence()
                .and_then(|env| env.iter().find(|e| e["name"].as_str() == Some("POD_IP")))
                .unwrap_or_else(|| panic!("{file}: no env POD_IP"));
            assert_eq!(
                pod_ip["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
                Some("status.podIP"),
                "{file}"
            );
            let expanded = external.replace("$(POD_IP)", "10.244.1.17");
            let url = leakwatch::http::address::ExternalUrl::parse(&expanded)
                .unwrap_or_else(|e| panic!("{file}: {expanded}: {e}"));
            assert_eq!(url.exported(), format!("http://10.244.1.17:{port}"));
            checked.push(file.clone());
        }
    }
    checked.sort();
    assert_eq!(
        checked,
        [
            "daemonset/daemonset.yaml",
            "probe/sharded.yaml",
            "sidecar/deployment-host-cgroup.yaml",
            "sidecar/deployment.yaml"
        ]
    );
}

#[test]
fn daemonset_runs_fleet_mode_with_the_node_in_view() {
    let cfg = Config::from_yaml(&config_of("leakwatch-node", "leakwatch.yml")).unwrap();
    let ds = find("DaemonSet", "leakwatch-node");
    let pod = &ds["spec"]["template"]["spec"];
    let lw = container(pod, "leakwatch");
    let args = strings(&lw["args"]);
    // Fleet mode on: in the config and on the command line, no target list.
    assert!(cfg.discover.enabled);
    assert!(args.contains(&"--discover".to_string()), "{args:?}");
    assert!(args.contains(&"--config=/etc/leakwatch/leakwatch.yml".to_string()));
    assert!(cfg.targets.is_empty());
    // kube-system is denied, by namespace.
    assert!(
        cfg.discover
            .deny
            .iter()
            .any(|r| r.namespace.as_deref() == Some("kube-system"))
    );
    // The labels on the pod template are the DaemonSet's selector (else the API refuses
    // it) and what the Prometheus job and the PodMonitor select.
    let selector = &ds["spec"]["selector"]["matchLabels"];
    assert_eq!(&pod_labels(&ds), selector);

    // Host PID namespace: /proc is the node's; root with the least capabilities.
    assert_eq!(pod["hostPID"].as_bool(), Some(true));
    assert_eq!(cfg.system.proc_root, Path::new("/proc"));
    assert_eq!(pod["securityContext"]["runAsUser"].as_u64(), Some(0));
    let sc = &lw["securityContext"];
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(
        strings(&sc["capabilities"]["add"]),
        ["SYS_PTRACE", "SYS_ADMIN", "SYSLOG"]
    );
    assert_eq!(sc["privileged"].as_bool(), Some(false));
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert!(
        pod["hostNetwork"].is_null(),
        "pods are reached by setns, not hostNetwork"
    );

    // Mounts: each hostPath where the config expects it, read-only but the dumps.
    let volumes = pod["volumes"].as_sequence().unwrap();
    let host_path = |name: &str| {
        volumes
            .iter()
            .find(|v| v["name"].as_str() == Some(name))
            .and_then(|v| v["hostPath"]["path"].as_str())
            .map(str::to_string)
    };
    let mounts = lw["volumeMounts"].as_sequence().unwrap();
    let mount_of = |host: &str| {
        mounts
            .iter()
            .find(|m| host_path(m["name"].as_str().unwrap()).as_deref() == Some(host))
            .unwrap_or_else(|| panic!("no hostPath mount of {host}"))
    };
    let cgroup = mount_of("/sys/fs/cgroup");
    assert_eq!(
        cfg.system.cgroup_root,
        Path::new(cgroup["mountPath"].as_str().unwrap())
    );
    assert_eq!(cgroup["readOnly"].as_bool(), Some(true));
    let kmsg = mount_of("/dev/kmsg");
    assert_eq!(cfg.system.kernel_log, kmsg["mountPath"].as_str().unwrap());
    assert_eq!(kmsg["readOnly"].as_bool(), Some(true));
    let dumps = mount_of("/var/lib/leakwatch/dumps");
    assert!(dumps["readOnly"].is_null());
    let dump_dir = cfg.defaults.dumps.as_ref().and_then(|d| d.dir.clone());
    assert_eq!(
        dump_dir.as_deref(),
        Some(Path::new(dumps["mountPath"].as_str().unwrap()))
    );
    let config = mounts
        .iter()
        .find(|m| m["mountPath"].as_str() == Some("/etc/leakwatch"))
        .unwrap();
    assert_eq!(config["readOnly"].as_bool(), Some(true));
    let cm = volumes
        .iter()
        .find(|v| v["name"] == config["name"])
        .unwrap();
    assert_eq!(cm["configMap"]["name"].as_str(), Some("leakwatch-node"));

    // Its own ServiceAccount, without an API token (leakwatch calls no API).
    assert_eq!(pod["serviceAccountName"].as_str(), Some("leakwatch-node"));
    assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(false));
    find("ServiceAccount", "leakwatch-node");
    // Requests and a memory limit.
    for key in ["requests.cpu", "requests.memory", "limits.memory"] {
        let (a, b) = key.split_once('.').unwrap();
        assert!(lw["resources"][a][b].as_str().is_some(), "no {key}");
    }
    // The listen port is the named container port the jobs keep.
    assert_eq!(cfg.listen.unwrap().port(), 10760);
    assert_eq!(lw["ports"][0]["containerPort"].as_u64(), Some(10760));
    assert_eq!(lw["ports"][0]["name"].as_str(), Some("http"));
}

/// A mapping's keys, sorted.
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_mapping()
        .unwrap_or_else(|| panic!("not a mapping: {v:?}"))
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    k.sort();
    k
}

fn pod_labels(workload: &Value) -> Value {
    workload["spec"]["template"]["metadata"]["labels"].clone()
}

#[test]
fn daemonset_prometheus_job_selects_its_pods_and_passes_promtool() {
    let ds = find("DaemonSet", "leakwatch-node");
    let labels = pod_labels(&ds);
    let prom: Value =
        serde_norway::from_str(&config_of("prometheus-leakwatch-node", "prometheus.yml")).unwrap();
    let job = &prom["scrape_configs"][0];
    assert_eq!(job["job_name"].as_str(), Some("leakwatch-node"));
    assert_eq!(
        job["kubernetes_sd_configs"][0]["role"].as_str(),
        Some("pod")
    );
    assert_eq!(
        strings(&job["kubernetes_sd_configs"][0]["namespaces"]["names"]),
        [ds["metadata"]["namespace"].as_str().unwrap()]
    );
    let rules = &job["relabel_configs"];
    // The keep rule on the pod labels matches the DaemonSet's pods, with their values.
    let keep = rules
        .as_sequence()
        .unwrap()
        .iter()
        .find(|r| {
            r["action"].as_str() == Some("keep")
                && strings(&r["source_labels"])[0].starts_with("__meta_kubernetes_pod_label_")
        })
        .unwrap();
    let values: Vec<String> = strings(&keep["source_labels"])
        .iter()
        .map(|l| {
            let key = l.strip_prefix("__meta_kubernetes_pod_label_").unwrap();
            // Prometheus writes a label key's `.`, `/` and `-` as `_`.
            let (_, v) = labels
                .as_mapping()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.as_str().unwrap(), v.as_str().unwrap()))
                .find(|(k, _)| k.replace(['.', '/', '-'], "_") == key)
                .unwrap_or_else(|| panic!("no pod label for {l}"));
            v.to_string()
        })
        .collect();
    let re = regex::Regex::new(&format!("^(?:{})$", keep["regex"].as_str().unwrap())).unwrap();
    assert!(re.is_match(&values.join(";")), "{values:?}");
    // leakwatch's own namespace/pod/container labels (the watched pod's) are not
    // overwritten by the leakwatch pod's: the job sets node and leakwatch_pod instead.
    for taken in ["namespace", "pod", "container"] {
        assert!(relabels(rules, taken).is_empty(), "{taken} set by the job");
    }
    assert_eq!(relabels(rules, "node"), ["__meta_kubernetes_pod_node_name"]);
    assert_eq!(
        relabels(rules, "leakwatch_pod"),
        ["__meta_kubernetes_pod_name"]
    );
    assert_eq!(
        strings(&prom["rule_files"]),
        ["leakwatch-rules.yml", "leakwatch-kube.yml"]
    );
    // The rule files it names are the rendered ones the shipped ConfigMap holds.
    promtool_check_config(prom, |f| config_of(RULES_CONFIGMAP, f));
}

#[test]
fn podmonitor_selects_the_daemonset_pods() {
    let ds = find("DaemonSet", "leakwatch-node");
    let pm = find("PodMonitor", "leakwatch-node");
    // The Operator's CRD, checked field by field (its schema is not in the validator's).
    assert_eq!(pm["apiVersion"].as_str(), Some("monitoring.coreos.com/v1"));
    assert_eq!(keys(&pm), ["apiVersion", "kind", "metadata", "spec"]);
    let spec = &pm["spec"];
    assert_eq!(
        keys(spec),
        ["namespaceSelector", "podMetricsEndpoints", "selector"]
    );
    assert_eq!(spec["selector"]["matchLabels"], pod_labels(&ds));
    assert_eq!(
        strings(&spec["namespaceSelector"]["matchNames"]),
        [ds["metadata"]["namespace"].as_str().unwrap()]
    );
    assert_eq!(pm["metadata"]["namespace"], ds["metadata"]["namespace"]);
    let endpoints = spec["podMetricsEndpoints"].as_sequence().unwrap();
    assert_eq!(endpoints.len(), 1);
    let ep = &endpoints[0];
    assert_eq!(
        keys(ep),
        ["interval", "path", "port", "relabelings", "scrapeTimeout"]
    );
    let lw = container(&ds["spec"]["template"]["spec"], "leakwatch");
    assert_eq!(ep["port"], lw["ports"][0]["name"]);
    assert_eq!(ep["path"].as_str(), Some("/metrics"));
    let duration = regex::Regex::new(r"^[0-9]+(ms|s|m|h)$").unwrap();
    for k in ["interval", "scrapeTimeout"] {
        assert!(duration.is_match(ep[k].as_str().unwrap()), "{k}");
    }
    // Relabelings: the RelabelConfig fields of the CRD, actions it knows.
    let fields = [
        "sourceLabels",
        "separator",
        "targetLabel",
        "regex",
        "modulus",
        "replacement",
        "action",
    ];
    for r in ep["relabelings"].as_sequence().unwrap() {
        for k in keys(r) {
            assert!(fields.contains(&k.as_str()), "relabeling field {k}");
        }
        if let Some(re) = r["regex"].as_str() {
            regex::Regex::new(re).unwrap();
        }
        let action = r["action"].as_str().unwrap_or("replace");
        assert!(
            [
                "replace",
                "keep",
                "drop",
                "labeldrop",
                "labelkeep",
                "labelmap",
                "hashmod"
            ]
            .contains(&action),
            "{action}"
        );
    }
    let rules = &ep["relabelings"];
    // Same labels as the plain job: node, leakwatch_pod, job leakwatch-node, and the
    // Operator's namespace/pod/container target labels dropped (leakwatch's win).
    assert_eq!(relabels(rules, "node"), ["__meta_kubernetes_pod_node_name"]);
    assert_eq!(
        relabels(rules, "leakwatch_pod"),
        ["__meta_kubernetes_pod_name"]
    );
    let job = rules
        .as_sequence()
        .unwrap()
        .iter()
        .find(|r| r["targetLabel"].as_str() == Some("job"))
        .unwrap();
    assert_eq!(job["replacement"].as_str(), Some("leakwatch-node"));
    let drop = rules
        .as_sequence()
        .unwrap()
        .iter()
        .find(|r| r["action"].as_str() == Some("labeldrop"))
        .unwrap();
    let re = regex::Regex::new(&format!("^(?:{})$", drop["regex"].as_str().unwrap())).unwrap();
    for l in ["namespace", "pod", "container"] {
        assert!(re.is_match(l), "{l} not dropped");
    }
    assert!(!re.is_match("node") && !re.is_match("target"));
}

/// The kube-state-metrics joins (alerts/leakwatch-kube.yml) pass their unit tests.
#[test]
fn kube_recording_rules_pass_promtool_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("promtool")
        .args(["test", "rules"])
        .arg(root.join("alerts/tests/kube.yml"))
        .output()
        .expect("promtool");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("SUCCESS"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rules = std::fs::read_to_string(root.join("alerts/leakwatch-kube.yml")).unwrap();
    for series in [
        "kube_pod_info",
        "kube_pod_container_info",
        "kube_replicaset_owner",
    ] {
        assert!(rules.contains(series), "{series}");
    }
}

/// The node agent's rules for a Prometheus without the Operator (daemonset/rules-configmap.yaml).
const RULES_CONFIGMAP: &str = "prometheus-leakwatch-node-rules";

/// A rule file of alerts/, as shipped.
fn shipped_rule_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("alerts")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("rule file {name}: {e}"))
}

/// `leakwatch rules` with `args`, run as a user runs it.
fn leakwatch_rules(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_leakwatch"))
        .arg("rules")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "leakwatch rules {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The rule groups of a Prometheus rule file.
fn rule_groups(text: &str) -> Vec<Value> {
    let file: Value = serde_norway::from_str(text).unwrap();
    file["groups"].as_sequence().unwrap().clone()
}

/// The job both scrape configs of daemonset/ give the agents: the Prometheus job's name
/// and the PodMonitor's `job` relabeling agree on it.
fn daemonset_job() -> String {
    let prom: Value =
        serde_norway::from_str(&config_of("prometheus-leakwatch-node", "prometheus.yml")).unwrap();
    let job = prom["scrape_configs"][0]["job_name"]
        .as_str()
        .unwrap()
        .to_string();
    let pm = find("PodMonitor", "leakwatch-node");
    let relabeled = pm["spec"]["podMetricsEndpoints"][0]["relabelings"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|r| r["targetLabel"].as_str() == Some("job"))
        .and_then(|r| r["replacement"].as_str())
        .expect("the PodMonitor sets job");
    assert_eq!(
        relabeled, job,
        "the PodMonitor's job and the Prometheus job"
    );
    job
}

/// The rules shipped for the node agent (daemonset/rules.yaml for the Operator,
/// daemonset/rules-configmap.yaml without it) are what daemonset/render-rules prints now
/// from `leakwatch rules` and alerts/, so they cannot drift from either.
/// `UPDATE_GOLDEN=1` rewrites them.
#[test]
fn daemonset_rules_are_what_render_rules_prints() {
    let dir = k8s_dir().join("daemonset");
    for (kind, file) in [
        ("prometheusrule", "rules.yaml"),
        ("configmap", "rules-configmap.yaml"),
    ] {
        let out = Command::new(dir.join("render-rules"))
            .arg(kind)
            .env("LEAKWATCH", env!("CARGO_BIN_EXE_leakwatch"))
            .output()
            .expect("deploy/kubernetes/daemonset/render-rules");
        assert!(
            out.status.success(),
            "render-rules {kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed = String::from_utf8(out.stdout).unwrap();
        let path = dir.join(file);
        if crate::support::update_golden() {
            std::fs::write(&path, &printed).unwrap();
            continue;
        }
        let shipped = std::fs::read_to_string(&path).unwrap();
        assert!(
            shipped == printed,
            "deploy/kubernetes/daemonset/{file} is not what render-rules prints now: run \
             deploy/kubernetes/daemonset/render-rules {kind} > deploy/kubernetes/daemonset/{file} \
             (or UPDATE_GOLDEN=1 cargo test --test it k8s::daemonset_rules)"
        );
    }

    // What they hold, read back as YAML (not through the script's text handling): the
    // ConfigMap, the two rule files byte for byte; the PrometheusRule, their groups in
    // that order. The selector is the agents' job, and the default's is gone.
    let job = daemonset_job();
    let selector = format!("job=\"{job}\"");
    let rendered = leakwatch_rules(&["--selector", &selector]);
    assert!(
        rendered.contains(&format!("up{{{selector}}}")),
        "{rendered}"
    );
    assert!(!rendered.contains("up{job=\"leakwatch\"}"), "{rendered}");
    let kube = shipped_rule_file("leakwatch-kube.yml");
    assert_eq!(config_of(RULES_CONFIGMAP, "leakwatch-rules.yml"), rendered);
    assert_eq!(config_of(RULES_CONFIGMAP, "leakwatch-kube.yml"), kube);
    let cm = find("ConfigMap", RULES_CONFIGMAP);
    assert_eq!(
        keys(&cm["data"]),
        ["leakwatch-kube.yml", "leakwatch-rules.yml"]
    );
    let want: Vec<Value> = rule_groups(&rendered)
        .into_iter()
        .chain(rule_groups(&kube))
        .collect();
    let pr = find("PrometheusRule", "leakwatch-node");
    assert_eq!(pr["spec"]["groups"].as_sequence().unwrap(), &want);
}

/// daemonset/rules.yaml: the Operator's PrometheusRule CRD checked field by field (its
/// schema is not in the validator's), its groups extracted to a rule file and checked by
/// promtool, as are the rule files of daemonset/rules-configmap.yaml.
#[test]
fn daemonset_prometheusrule_fields_and_groups_pass_promtool() {
    let ds = find("DaemonSet", "leakwatch-node");
    let pr = find("PrometheusRule", "leakwatch-node");
    assert_eq!(pr["apiVersion"].as_str(), Some("monitoring.coreos.com/v1"));
    assert_eq!(keys(&pr), ["apiVersion", "kind", "metadata", "spec"]);
    assert_eq!(keys(&pr["metadata"]), ["labels", "name", "namespace"]);
    assert_eq!(pr["metadata"]["namespace"], ds["metadata"]["namespace"]);
    assert_eq!(pr["metadata"]["labels"], ds["metadata"]["labels"]);
    assert_eq!(keys(&pr["spec"]), ["groups"]);
    // The CRD's RuleGroup and Rule fields (monitoring.coreos.com/v1).
    let group_fields = [
        "interval",
        "labels",
        "limit",
        "name",
        "partial_response_strategy",
        "query_offset",
        "rules",
    ];
    let rule_fields = [
        "alert",
        "annotations",
        "expr",
        "for",
        "keep_firing_for",
        "labels",
        "record",
    ];
    let duration = regex::Regex::new(r"^(0|([0-9]+(ms|s|m|h|d|w|y))+)$").unwrap();
    let groups = pr["spec"]["groups"].as_sequence().unwrap();
    let mut names = Vec::new();
    let (mut alerts, mut records) = (0, 0);
    for g in groups {
        for k in keys(g) {
            assert!(group_fields.contains(&k.as_str()), "group field {k}");
        }
        names.push(g["name"].as_str().unwrap().to_string());
        for r in g["rules"].as_sequence().unwrap() {
            for k in keys(r) {
                assert!(rule_fields.contains(&k.as_str()), "rule field {k}: {r:?}");
            }
            assert!(r["expr"].as_str().is_some_and(|e| !e.trim().is_empty()));
            match (r["alert"].as_str(), r["record"].as_str()) {
                (Some(_), None) => alerts += 1,
                (None, Some(_)) => records += 1,
                _ => panic!("a rule is an alert or a record: {r:?}"),
            }
            if let Some(d) = r["for"].as_str() {
                assert!(duration.is_match(d), "for: {d}");
            }
            for map in ["labels", "annotations"] {
                if let Some(m) = r[map].as_mapping() {
                    assert!(m.values().all(|v| v.as_str().is_some()), "{map}: {r:?}");
                }
            }
        }
    }
    assert_eq!(
        names,
        [
            "leakwatch.rules",
            "leakwatch.alerts",
            "leakwatch.meta",
            "leakwatch.kube"
        ]
    );

    let dir = tempfile::tempdir().unwrap();
    let mut spec_groups = serde_norway::Mapping::new();
    spec_groups.insert(Value::from("groups"), pr["spec"]["groups"].clone());
    let extracted = dir.path().join("prometheusrule.yml");
    std::fs::write(&extracted, serde_norway::to_string(&spec_groups).unwrap()).unwrap();
    let mut files = vec![extracted];
    for f in ["leakwatch-rules.yml", "leakwatch-kube.yml"] {
        let p = dir.path().join(f);
        std::fs::write(&p, config_of(RULES_CONFIGMAP, f)).unwrap();
        files.push(p);
    }
    for f in &files {
        let out = Command::new("promtool")
            .args(["check", "rules"])
            .arg(f)
            .output()
            .expect("promtool (scripts/install-test-deps installs it)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {stdout}{}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        // promtool read every rule of the PrometheusRule.
        if f == &files[0] {
            let found = format!("SUCCESS: {} rules found", alerts + records);
            assert!(stdout.contains(&found), "{stdout}");
        }
    }
    assert!(
        alerts > 0 && records > 0,
        "{alerts} alerts, {records} records"
    );
}
