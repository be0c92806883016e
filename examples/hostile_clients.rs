//! What hostile and careless clients do to a running exporter binary, as
//! figures: connections that never finish a request head, health beside
//! them under a small open-file limit, a flood of wrong passwords, and a
//! probe beside a slow target. Point it at any release's binary to compare.
//!
//!   cargo build --release
//!   ulimit -n 4096 && cargo run --release --example hostile_clients -- target/release/whatsapp-exporter
//!
//! Only the binary's default flags are used, so an earlier release runs it
//! too. Everything is on loopback; the Graph API is the crate's simulator.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use whatsapp_exporter::sim::{Fault, Simulator};

#[derive(Parser)]
struct Args {
    /// The exporter binary.
    binary: PathBuf,
    /// Unfinished connections opened.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// How long to hold them before counting those still open (seconds).
    #[arg(long, default_value_t = 35)]
    hold: u64,
    /// Clients sending wrong passwords at once.
    #[arg(long, default_value_t = 64)]
    flooders: usize,
    /// How long the flood lasts (seconds).
    #[arg(long, default_value_t = 10)]
    flood: u64,
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts `binary` with `args` (under `ulimit -n`, if given); waits until it listens.
async fn start(binary: &Path, args: &[String], nofile: Option<u32>) -> (Running, u16) {
    let port = free_port();
    let mut all = vec![format!("--web.listen-address=127.0.0.1:{port}")];
    all.extend(args.iter().cloned());
    let mut cmd = match nofile {
        Some(n) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .arg(binary);
            c
        }
        None => Command::new(binary),
    };
    let child = cmd
        .args(&all)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let until = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < until, "the exporter does not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (Running(child), port)
}

/// Opens `n` connections; every other one sends half a request head.
async fn unfinished(port: u16, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        match TcpStream::connect(("127.0.0.1", port)).await {
            Ok(mut s) => {
                if i % 2 == 0 {
                    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await;
                }
                held.push(s);
            }
            Err(e) => {
                println!("  connection {i} not opened: {e}");
                break;
            }
        }
    }
    held
}

/// How many of `held` the server has not closed.
async fn still_open(held: &mut [TcpStream]) -> usize {
    let mut open = 0;
    let mut buf = [0u8; 64];
    for s in held.iter_mut() {
        match tokio::time::timeout(Duration::from_millis(5), s.read(&mut buf)).await {
            Err(_) => open += 1,
            Ok(Ok(n)) if n > 0 => open += 1,
            Ok(_) => {}
        }
    }
    open
}

async fn timed_get(client: &reqwest::Client, url: &str, auth: Option<(&str, &str)>) -> String {
    let mut req = client.get(url).timeout(Duration::from_secs(10));
    if let Some((u, p)) = auth {
        req = req.basic_auth(u, Some(p));
    }
    let t = Instant::now();
    match req.send().await {
        Ok(r) => format!(
            "{} in {:.3} s",
            r.status().as_u16(),
            t.elapsed().as_secs_f64()
        ),
        Err(e) if e.is_timeout() => "no answer within 10 s".to_string(),
        Err(e) => format!("failed after {:.3} s ({e})", t.elapsed().as_secs_f64()),
    }
}

fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0.0;
    };
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    (f[11] + f[12]) / 100.0
}

/// The pid of the exporter (the child itself, or the process `sh` exec'd).
fn pid(r: &Running) -> u32 {
    r.0.id()
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let bin = args.binary.canonicalize().expect("the binary exists");
    let client = reqwest::Client::new();
    let dir = std::env::temp_dir().join(format!("hostile-clients-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp dir");

    println!("## {}", bin.display());
    // 1. Unfinished connections, default flags.
    {
        let (_r, port) = start(&bin, &["--demo".into()], None).await;
        let mut held = unfinished(port, args.connections).await;
        let health = timed_get(&client, &format!("http://127.0.0.1:{port}/-/healthy"), None).await;
        println!(
            "unfinished connections: {} opened; /-/healthy beside them: {health}",
            held.len()
        );
        tokio::time::sleep(Duration::from_secs(args.hold)).await;
        println!(
            "  still open after {} s: {}",
            args.hold,
            still_open(&mut held).await
        );
    }
    // 2. The same under ulimit -n 256, 300 connections.
    {
        let (_r, port) = start(&bin, &["--demo".into()], Some(256)).await;
        let _held = unfinished(port, 300).await;
        let base = format!("http://127.0.0.1:{port}");
        println!(
            "ulimit -n 256, 300 unfinished connections: /-/healthy {}; /metrics {}",
            timed_get(&client, &format!("{base}/-/healthy"), None).await,
            timed_get(&client, &format!("{base}/metrics"), None).await
        );
    }
    // 3. Passwords: unknown against known, then a flood.
    {
        let web = dir.join("web.yml");
        let hash = |p: &str, cost| bcrypt::hash(p, cost).expect("bcrypt");
        std::fs::write(
            &web,
            format!(
                "basic_auth_users:\n  prometheus: {}\n  admin: {}\n",
                hash("scrape", 10),
                hash("admin", 12)
            ),
        )
        .expect("web.yml");
        let (r, port) = start(
            &bin,
            &[
                "--demo".into(),
                format!("--web.config.file={}", web.display()),
            ],
            None,
        )
        .await;
        let url = format!("http://127.0.0.1:{port}/-/healthy");
        let mean = |user: &'static str| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let t = Instant::now();
                for i in 0..5 {
                    let _ = client
                        .get(&url)
                        .basic_auth(user, Some(format!("wrong-{i}")))
                        .send()
                        .await;
                }
                t.elapsed().as_secs_f64() / 5.0
            }
        };
        println!(
            "wrong password, no flood: known user (cost 12) {:.3} s, unknown user {:.3} s",
            mean("admin").await,
            mean("nobody").await
        );
        let cpu = cpu_seconds(pid(&r));
        let started = Instant::now();
        let until = started + Duration::from_secs(args.flood);
        let mut flood = Vec::new();
        // From another address than the scraper's (127.0.0.2 is loopback too).
        let flooder = reqwest::Client::builder()
            .local_address(Some(std::net::Ipv4Addr::new(127, 0, 0, 2).into()))
            .build()
            .expect("a client");
        for c in 0..args.flooders {
            let (client, url) = (flooder.clone(), url.clone());
            flood.push(tokio::spawn(async move {
                let (mut n, mut refused) = (0u32, 0u32);
                while Instant::now() < until {
                    let r = client
                        .get(&url)
                        .basic_auth("admin", Some(format!("guess-{c}-{n}")))
                        .timeout(Duration::from_secs(30))
                        .send()
                        .await;
                    n += 1;
                    refused += u32::from(r.is_ok_and(|r| r.status() == 429));
                }
                (n, refused)
            }));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let first = timed_get(&client, &url, Some(("prometheus", "scrape"))).await;
        let again = timed_get(&client, &url, Some(("prometheus", "scrape"))).await;
        let (mut sent, mut refused) = (0, 0);
        for f in flood {
            if let Ok((n, r)) = f.await {
                sent += n;
                refused += r;
            }
        }
        let cores = (cpu_seconds(pid(&r)) - cpu) / started.elapsed().as_secs_f64();
        println!(
            "password flood ({} clients, {} s): {cores:.2} cores, {sent} requests, {refused} answered 429; \
             first valid login during it {first}; the next {again}",
            args.flooders, args.flood
        );
    }
    // 4. A probe beside a slow target.
    {
        let sim = Simulator::new("EAAG-bench-token");
        let (waba, fast, slow) = ("5678901234567890", "1234567890123456", "1234567890123457");
        sim.add_waba(waba);
        sim.add_phone(fast);
        sim.add_phone(slow);
        let url = sim.start().await.expect("the simulator starts");
        std::fs::write(dir.join("token"), "EAAG-bench-token\n").expect("token");
        let cfg = dir.join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "graph_api:\n  base_url: {url}\n  request_timeout: 20s\n  access_token_file: {}\n\
                 accounts:\n  - waba_id: \"{waba}\"\n    phone_number_ids: [\"{fast}\", \"{slow}\"]\n\
                 collect:\n  min_interval: 0s\nstate_file: {}\n",
                dir.join("token").display(),
                dir.join("state.db").display()
            ),
        )
        .expect("config");
        let (_r, port) = start(&bin, &[format!("--config.file={}", cfg.display())], None).await;
        let base = format!("http://127.0.0.1:{port}");
        let _ = client.get(format!("{base}/metrics")).send().await;
        sim.set_fault(slow, Some(Fault::Delay(Duration::from_secs(8))));
        let scrape = tokio::spawn({
            let req = client.get(format!("{base}/metrics"));
            async move { req.send().await.map(|r| r.status()) }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        let probe = timed_get(
            &client,
            &format!("{base}/probe?target={fast}&collector=message_history"),
            None,
        )
        .await;
        println!("/probe of a fast target while its neighbour takes 8 s: {probe}");
        sim.set_fault(slow, None);
        let _ = scrape.await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
