//! The `drill` command line against a stand-in Prometheus whose rule never fires: the plan
//! with `--dry-run` (exit 0), a failed drill (exit 99, the phase named), an unknown alert
//! (exit 1). The drills against the real Prometheus and Alertmanager run in rules-tests.

mod common;

use std::net::SocketAddr;

use common::{TestServer, loadgen_line};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const RULES: &str = r#"{"status":"success","data":{"groups":[{"name":"prism-critical",
"interval":1,"rules":[{"type":"alerting","name":"HighErrorRate","query":"vector(0) > 1",
"duration":1,"keepFiringFor":0,"labels":{"severity":"critical"}}]}]}}"#;
const NO_ALERTS: &str = r#"{"status":"success","data":{"alerts":[]}}"#;
/// Bound on the requests one stand-in connection serves.
const MAX_REQUESTS: usize = 1000;

/// Answers `/api/v1/rules` with [`RULES`] and `/api/v1/alerts` with no alert, like a
/// Prometheus whose HighErrorRate can never fire.
fn stand_in_prometheus(runtime: &tokio::runtime::Runtime) -> SocketAddr {
    let listener = runtime
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    runtime.spawn(async move {
        for _ in 0..MAX_REQUESTS {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = [0u8; 2048];
                let Ok(length) = stream.read(&mut head).await else {
                    return;
                };
                let request = String::from_utf8_lossy(&head[..length]);
                let body = if request.starts_with("GET /api/v1/rules") {
                    RULES
                } else {
                    NO_ALERTS
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    addr
}

#[test]
fn drill_prints_its_plan_fails_with_exit_99_and_refuses_unknown_alerts() {
    let server = TestServer::open();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let prometheus = stand_in_prometheus(&runtime);
    let target = server.registration;
    let drill =
        format!("drill --prometheus http://{prometheus} --target {target} --slack 1s --poll 200ms");

    let run = loadgen_line(&format!("{drill} --alert HighErrorRate --dry-run"));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.contains("plan (dry run, nothing sent)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("pending    within 4.0 s"),
        "{}",
        run.stdout
    );

    let run = loadgen_line(&format!("{drill} --alert HighErrorRate --hold 0s"));
    assert_eq!(run.code, Some(99), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.starts_with("drill HighErrorRate: FAIL")
            && run.stdout.contains("never became pending within 4.0 s"),
        "{}",
        run.stdout
    );

    let run = loadgen_line(&format!("{drill} --alert NoSuchAlert"));
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("no alerting rule named NoSuchAlert")
            && run.stderr.contains("HighErrorRate"),
        "{}",
        run.stderr
    );
}
