//! The real `dig` (Debian package `bind9-dnsutils`) against an in-process server: what an
//! operator following docs/DNS.md sees. Fails, never skips, when dig is not installed.

use std::process::Command;

use prism_testkit::TestServer;
use prism_testkit::setup::open_config;

/// Runs dig against the server with `args` and returns its stdout; bounded by dig's own
/// `+time`/`+tries` options.
async fn dig(server: &TestServer, args: &[&str]) -> String {
    let dns = server.dns_addr();
    let mut command = Command::new("dig");
    command
        .arg(format!("@{}", dns.ip()))
        .arg("-p")
        .arg(dns.port().to_string())
        .args(["+time=3", "+tries=1"])
        .args(args);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("dig task")
        .unwrap_or_else(|err| {
            panic!(
                "cannot run `dig` ({err}): install it with \
                 `apt-get install -y --no-install-recommends bind9-dnsutils` (scripts/test does)"
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "dig {args:?} failed with {}: {stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The answer-section lines of dig's output, whitespace-normalised.
fn answer_lines(output: &str) -> Vec<String> {
    output
        .lines()
        .skip_while(|line| !line.starts_with(";; ANSWER SECTION:"))
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[tokio::test]
async fn dig_resolves_a_registered_host_as_documented() {
    let server = TestServer::builder(open_config()).dns().start().await;
    server.register("web-01", None).await;

    let output = dig(&server, &["web-01.managed.prism.local"]).await;

    assert!(output.contains("status: NOERROR"), "dig output:\n{output}");
    assert!(
        output.contains("flags: qr aa rd;") || output.contains("flags: qr aa rd "),
        "authoritative, no recursion available; dig output:\n{output}"
    );
    assert_eq!(
        answer_lines(&output),
        vec!["web-01.managed.prism.local. 60 IN A 127.0.0.1".to_owned()],
        "dig output:\n{output}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn dig_over_tcp_sees_nxdomain_for_an_unknown_host() {
    let server = TestServer::builder(open_config()).dns().start().await;

    let output = dig(&server, &["+tcp", "nobody.managed.prism.local"]).await;

    assert!(output.contains("status: NXDOMAIN"), "dig output:\n{output}");
    assert!(output.contains("(TCP)"), "dig used TCP; output:\n{output}");
    assert!(
        output.contains("managed.prism.local.") && output.contains("SOA"),
        "the SOA is in the authority section; dig output:\n{output}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn dig_short_lists_the_apex_name_server() {
    let server = TestServer::builder(open_config()).dns().start().await;

    let output = dig(&server, &["+short", "managed.prism.local", "NS"]).await;

    assert_eq!(output.trim(), "ns1.managed.prism.local.");
    server.shutdown().await;
}
