//! Bakes the git revision into the binary for `--version` and build_info.
use std::process::Command;

fn main() {
    // A build without .git (a container build) can pass the revision in.
    println!("cargo:rerun-if-env-changed=WHATSAPP_EXPORTER_REVISION");
    if let Ok(rev) = std::env::var("WHATSAPP_EXPORTER_REVISION")
        && !rev.trim().is_empty()
    {
        println!("cargo:rustc-env=WHATSAPP_EXPORTER_REVISION={}", rev.trim());
        return;
    }
    let rev = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=WHATSAPP_EXPORTER_REVISION={rev}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}
