//! What ships for deployment: the Dockerfile builds with the command CI
//! proves, the Kubernetes manifests hang together and carry the shipped
//! rules, and the docker-compose stack's Prometheus and Alertmanager configs
//! pass promtool and amtool with the files mounted where compose mounts them.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_norway::Value as Yaml;

use crate::support::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every document of a YAML file.
fn docs(path: &Path) -> Vec<Yaml> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|d| {
            serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

fn k8s(name: &str) -> Yaml {
    let mut d = docs(&repo().join("deploy/kubernetes").join(name));
    assert_eq!(d.len(), 1, "{name}");
    d.remove(0)
}

#[test]
fn kubernetes_manifests_hang_together() {
    let dir = repo().join("deploy/kubernetes");
    let kustomization = k8s("kustomization.yaml");
    let resources: Vec<&str> = kustomization["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    for r in &resources {
        let obj = k8s(r);
        for key in ["apiVersion", "kind"] {
            assert!(obj[key].is_string(), "{r}: no {key}");
        }
        assert!(obj["metadata"]["name"].is_string(), "{r}: no name");
    }
    // Every manifest in the folder is listed (overlays live in subfolders).
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_dir() {
            continue;
        }
        let name = entry.file_name().into_string().unwrap();
        assert!(
            name == "kustomization.yaml" || resources.contains(&name.as_str()),
            "{name} is not in kustomization.yaml"
        );
    }

    let sts = k8s("statefulset.yaml");
    let svc = k8s("service.yaml");
    let monitor = k8s("servicemonitor.yaml");
    let pod_labels = &sts["spec"]["template"]["metadata"]["labels"];
    assert_eq!(&sts["spec"]["selector"]["matchLabels"], pod_labels);
    assert_eq!(&svc["spec"]["selector"], pod_labels);
    assert_eq!(
        &monitor["spec"]["selector"]["matchLabels"],
        &svc["metadata"]["labels"]
    );
    let container = &sts["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["ports"][0]["containerPort"].as_u64(), Some(9917));
    let port_name = container["ports"][0]["name"].as_str().unwrap();
    assert_eq!(
        svc["spec"]["ports"][0]["targetPort"].as_str(),
        Some(port_name)
    );
    assert_eq!(
        monitor["spec"]["endpoints"][0]["port"],
        svc["spec"]["ports"][0]["name"]
    );
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/-/healthy");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/-/ready");
    assert_eq!(
        sts["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
        Yaml::Bool(true)
    );
    // The token is a Secret reference, never a literal.
    let volumes = sts["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .unwrap();
    assert!(
        volumes
            .iter()
            .any(|v| v["secret"]["secretName"] == "whatsapp-exporter-token")
    );
    assert!(
        !std::fs::read_to_string(dir.join("statefulset.yaml"))
            .unwrap()
            .contains("EAA")
    );
}

#[test]
fn the_configmap_config_passes_config_check() {
    let cm = k8s("configmap.yaml");
    let dir = temp_dir("deploy-cm");
    let token = dir.join("token");
    std::fs::write(&token, "EAAG-placeholder\n").unwrap();
    // As mounted in the pod, but with the token file here.
    let text = cm["data"]["config.yml"]
        .as_str()
        .unwrap()
        .replace("/run/secrets/whatsapp/token", token.to_str().unwrap());
    let cfg = dir.join("config.yml");
    std::fs::write(&cfg, text).unwrap();
    let mut check = Command::new(env!("CARGO_BIN_EXE_whatsapp-exporter"));
    check
        .args([
            "--config.check",
            &format!("--config.file={}", cfg.display()),
        ])
        .env_remove("WHATSAPP_ACCESS_TOKEN");
    let out = run_ok(check);
    assert!(out.contains("configuration is valid"), "{out}");
}

#[test]
fn the_sharded_overlay_runs_one_shard_per_pod() {
    let dir = repo().join("deploy/kubernetes/sharded");
    let k = &docs(&dir.join("kustomization.yaml"))[0];
    assert_eq!(k["resources"][0], "../");
    let patches: Vec<&str> = k["patches"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    for p in &patches {
        assert!(dir.join(p).is_file(), "{p}");
    }
    let sts = &docs(&dir.join("statefulset-patch.yaml"))[0];
    let replicas = sts["spec"]["replicas"].as_u64().unwrap();
    let env = &sts["spec"]["template"]["spec"]["containers"][0]["env"][0];
    assert_eq!(env["name"], "POD_NAME");
    assert_eq!(env["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name");
    let cm = &docs(&dir.join("configmap-patch.yaml"))[0];
    let config = cm["data"]["config.yml"].as_str().unwrap();
    let parsed: Yaml = serde_norway::from_str(config).unwrap();
    assert_eq!(
        parsed["shard"]["count"].as_u64(),
        Some(replicas),
        "one shard per pod"
    );
    // The config is valid, and a pod's name gives its shard.
    let tmp = temp_dir("deploy-sharded");
    std::fs::write(tmp.join("token"), "EAAG-placeholder\n").unwrap();
    let cfg = tmp.join("config.yml");
    std::fs::write(
        &cfg,
        config.replace(
            "/run/secrets/whatsapp/token",
            tmp.join("token").to_str().unwrap(),
        ),
    )
    .unwrap();
    let mut check = Command::new(env!("CARGO_BIN_EXE_whatsapp-exporter"));
    check.args([
        "--config.check",
        &format!("--config.file={}", cfg.display()),
    ]);
    run_ok(check);
    let shard = whatsapp_exporter::config::Shard::from_config(
        &serde_norway::from_value(parsed["shard"].clone()).unwrap(),
        |k| (k == "POD_NAME").then(|| "whatsapp-exporter-2".to_string()),
    );
    assert_eq!(shard.map(|s| (s.index, s.count)), Ok((2, 3)));
}

#[test]
fn the_prometheusrule_carries_the_shipped_rules() {
    let rule = k8s("prometheusrule.yaml");
    assert_eq!(rule["kind"], "PrometheusRule");
    let shipped = &docs(&repo().join("alerts/whatsapp-exporter.rules.yml"))[0];
    assert_eq!(
        rule["spec"]["groups"], shipped["groups"],
        "deploy/kubernetes/prometheusrule.yaml differs from alerts/whatsapp-exporter.rules.yml: copy the groups over"
    );
}

#[test]
fn compose_stack_configs_pass_promtool_and_amtool() {
    let compose_dir = repo().join("deploy/compose");
    let compose = &docs(&compose_dir.join("docker-compose.yml"))[0];
    let services = compose["services"].as_mapping().unwrap();
    for s in ["whatsapp-exporter", "prometheus", "alertmanager", "grafana"] {
        assert!(services.contains_key(s), "no service {s}");
    }
    let exporter = &compose["services"]["whatsapp-exporter"];
    assert!(
        compose_dir
            .join(exporter["build"]["context"].as_str().unwrap())
            .join("Dockerfile")
            .is_file()
    );
    assert_eq!(exporter["command"][0], "--demo");
    // Every bind mount exists in the repository.
    let mut mounts = Vec::new();
    for (_, svc) in services {
        for v in svc["volumes"].as_sequence().into_iter().flatten() {
            let v = v.as_str().unwrap();
            let host = v.split(':').next().unwrap();
            assert!(compose_dir.join(host).exists(), "{v}: {host} missing");
            mounts.push(v.to_string());
        }
    }

    // Lay out /etc/prometheus as compose mounts it and check the config there.
    let etc = temp_dir("deploy-prometheus");
    std::fs::copy(
        compose_dir.join("prometheus.yml"),
        etc.join("prometheus.yml"),
    )
    .unwrap();
    std::fs::create_dir_all(etc.join("alerts")).unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m == "../../alerts:/etc/prometheus/alerts:ro")
    );
    for f in std::fs::read_dir(repo().join("alerts")).unwrap() {
        let f = f.unwrap().path();
        if f.is_file() {
            std::fs::copy(&f, etc.join("alerts").join(f.file_name().unwrap())).unwrap();
        }
    }
    if let Some(promtool) = external_tool("promtool", "prometheus") {
        let mut check = Command::new(promtool);
        check
            .args(["check", "config"])
            .arg(etc.join("prometheus.yml"));
        let out = run_ok(check);
        assert!(out.contains("SUCCESS: 1 rule files found"), "{out}");
    }
    if let Some(amtool) = external_tool("amtool", "prometheus-alertmanager") {
        let mut check = Command::new(amtool);
        check
            .args(["check-config"])
            .arg(compose_dir.join("alertmanager.yml"));
        run_ok(check);
    }
}

#[test]
fn dockerfile_builds_with_the_command_ci_proves() {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let steps: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    let has = |s: &str| steps.iter().any(|l| l.contains(s));
    assert!(has("RUN cargo build --release --locked"));
    assert!(
        has("ca-certificates"),
        "the runtime image needs CA certificates"
    );
    assert!(has("USER 65532"), "non-root");
    assert!(has("EXPOSE 9917"));
    // What the build copies exists, and .dockerignore keeps it in.
    for src in ["Cargo.toml", "Cargo.lock", "build.rs", "src"] {
        assert!(repo().join(src).exists());
    }
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    for kept in ["Cargo.toml", "Cargo.lock", "build.rs", "src"] {
        assert!(!ignore.lines().any(|l| l.trim() == kept), "{kept} ignored");
    }
    assert!(ignore.lines().any(|l| l.trim() == "target"));
    // No secret baked in.
    assert!(!text.contains("WHATSAPP_ACCESS_TOKEN="));
}
