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

#[test]
fn prometheus_jobs_pass_promtool() {
    let text = config_of("prometheus-leakwatch", "prometheus.yml");
    let mut prom: Value = serde_norway::from_str(&text).unwrap();
    let jobs = prom["scrape_configs"].as_sequence_mut().unwrap();
    let names: Vec<&str> = jobs
        .iter()
        .map(|j| j["job_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "leakwatch-probe",
            "leakwatch-probe-shard-0",
            "leakwatch-probe-shard-1",
            "leakwatch-probe-shard-2",
            "leakwatch-shards"
        ]
    );
    // Each shard job keeps its own hashmod bucket (modulus = replicas) and sends the
    // probe to the replica of the same index.
    for (i, job) in jobs.iter().enumerate().skip(1).take(3) {
        let shard = i - 1;
        let rules = job["relabel_configs"].as_sequence().unwrap();
        let hashmod = rules
            .iter()
            .find(|r| r["action"].as_str() == Some("hashmod"))
            .unwrap();
        assert_eq!(hashmod["modulus"].as_u64(), Some(3));
        assert_eq!(
            strings(&hashmod["source_labels"]),
            ["__tmp_hostport".to_string()]
        );
        assert!(rules.iter().any(|r| r["action"].as_str() == Some("keep")
            && r["regex"].as_str() == Some(&shard.to_string())
            && strings(&r["source_labels"]) == ["__tmp_shard".to_string()]));
        let address = rules.last().unwrap();
        assert_eq!(address["target_label"].as_str(), Some("__address__"));
        assert_eq!(
            address["replacement"].as_str().unwrap(),
            format!("leakwatch-shard-{shard}.leakwatch-shard.monitoring.svc:10760")
        );
        assert_eq!(job["metrics_path"].as_str(), Some("/probe"));
    }
    // Debian's promtool is built without Kubernetes service discovery, so the check
    // runs on the same jobs with a static target in place of kubernetes_sd_configs:
    // everything else (relabel rules, regexes, hashmod, paths) is checked as written.
    for job in jobs.iter_mut() {
        let m = job.as_mapping_mut().unwrap();
        assert!(m.remove("kubernetes_sd_configs").is_some());
        m.insert(
            Value::from("static_configs"),
            serde_norway::from_str("[{targets: ['10.244.3.17:6060']}]").unwrap(),
        );
    }
    let dir = tempfile::tempdir().unwrap();
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
