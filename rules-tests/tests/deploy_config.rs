//! What `scripts/deploy-monitoring.sh` renders and ships: one scrape target per Prism node,
//! runbook links under the configured base, only the receivers that are configured (never a
//! placeholder), and a production deployment that refuses to start without what it needs.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use prism_rules_tests::{deploy_script, run_tool};

const RUNBOOK: &str = "https://git.corp.example/prism/blob/main/monitoring/RUNBOOK.md";

/// Every receiver configured, with values an operator would give.
const ALL_RECEIVERS: &[(&str, &str)] = &[
    (
        "PRISM_WEBHOOK_URL",
        "https://hooks.corp.example/prism?team=dns&x=1",
    ),
    ("PRISM_WEBHOOK_TOKEN", "webhook-secret"),
    (
        "PRISM_SLACK_API_URL",
        "https://hooks.slack.com/services/T0/B0/x",
    ),
    ("PRISM_EMAIL_TO", "dns-oncall@corp.example"),
    ("PRISM_SMTP_SMARTHOST", "smtp.corp.example:587"),
    ("PRISM_SMTP_FROM", "prism@corp.example"),
    ("PRISM_SMTP_PASSWORD", "smtp-secret"),
];

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    deploy_script()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run scripts/deploy-monitoring.sh")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Renders into a fresh directory; panics with the script's output when it fails.
fn render(args: &[&str], env: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().to_str().expect("utf-8 path");
    let mut all = vec!["render", "--out", out];
    all.extend_from_slice(args);
    let output = run(&all, env);
    assert!(
        output.status.success(),
        "render failed:\n{}",
        stderr(&output)
    );
    dir
}

fn must_pass(tool: &str, args: &[&OsStr]) -> String {
    let run = run_tool(tool, args).unwrap_or_else(|problem| panic!("{problem}"));
    assert!(run.success, "{tool} failed:\n{}", run.output);
    run.output
}

fn amtool_accepts(config: &Path) {
    must_pass("amtool", &[OsStr::new("check-config"), config.as_os_str()]);
}

fn targets(file: &Path) -> Vec<String> {
    let groups: serde_json::Value =
        serde_json::from_str(&read(file)).expect("targets file is JSON");
    groups
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|group| group["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|target| target.as_str().map(str::to_owned))
        .collect()
}

#[test]
fn without_receivers_no_integration_is_configured_and_no_placeholder_is_contacted() {
    let dir = render(&[], &[]);
    let config = dir.path().join("config/alertmanager.yml");
    let text = read(&config);
    for integration in ["webhook_configs", "slack_configs", "email_configs", "smtp_"] {
        assert!(
            !text.contains(integration),
            "{integration} rendered although nothing is configured:\n{text}"
        );
    }
    assert!(!text.contains("example.invalid"), "{text}");
    amtool_accepts(&config);
}

#[test]
fn every_configured_receiver_is_rendered_with_its_values_and_secret_files() {
    let dir = render(&[], ALL_RECEIVERS);
    let config = dir.path().join("config/alertmanager.yml");
    let text = read(&config);
    assert_eq!(
        text.matches("url: \"https://hooks.corp.example/prism?team=dns&x=1\"")
            .count(),
        3,
        "webhook URL on its three receivers:\n{text}"
    );
    assert_eq!(text.matches("slack_configs:").count(), 2, "{text}");
    for wanted in [
        "smtp_smarthost: \"smtp.corp.example:587\"",
        "smtp_from: \"prism@corp.example\"",
        "smtp_auth_username: \"prism@corp.example\"",
        "to: \"dns-oncall@corp.example\"",
        "/etc/alertmanager/secrets/smtp_password",
    ] {
        assert!(text.contains(wanted), "{wanted} missing:\n{text}");
    }
    assert!(!text.contains("example.invalid"), "{text}");
    amtool_accepts(&config);
    for (file, secret) in [
        ("webhook_token", "webhook-secret"),
        ("slack_api_url", "https://hooks.slack.com/services/T0/B0/x"),
        ("smtp_password", "smtp-secret"),
    ] {
        let path = dir.path().join("secrets").join(file);
        assert_eq!(read(&path), secret, "{file}");
        let mode = std::fs::metadata(&path)
            .expect("secret file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{file} is readable by others: {mode:o}");
    }
}

#[test]
fn a_half_configured_receiver_is_refused() {
    for (env, named) in [
        (
            &[("PRISM_WEBHOOK_URL", "https://hooks.corp.example/a")][..],
            "PRISM_WEBHOOK_TOKEN",
        ),
        (&[("PRISM_WEBHOOK_TOKEN", "t")][..], "PRISM_WEBHOOK_URL"),
        (
            &[
                ("PRISM_EMAIL_TO", "a@corp.example"),
                ("PRISM_SMTP_FROM", "b@corp.example"),
            ][..],
            "PRISM_SMTP_SMARTHOST",
        ),
        (
            &[("PRISM_SLACK_API_URL", "hooks.slack.com/x")][..],
            "PRISM_SLACK_API_URL",
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let output = run(&["render", "--out", out.to_str().expect("utf-8 path")], env);
        assert!(!output.status.success(), "{env:?} was accepted");
        assert!(
            stderr(&output).contains(named),
            "{env:?}: {}",
            stderr(&output)
        );
        assert!(!out.exists(), "{env:?}: something was rendered anyway");
    }
}

#[test]
fn several_nodes_become_one_target_each_and_the_native_config_passes_promtool() {
    let dir = render(
        &[
            "--native",
            "--target",
            "prism-a.internal:8081,prism-b.internal:8081",
            "--target",
            "[2001:db8::3]:8081",
            "--runbook-url",
            RUNBOOK,
        ],
        &[],
    );
    let config = dir.path().join("config");
    assert_eq!(
        targets(&config.join("targets/prism.json")),
        [
            "prism-a.internal:8081",
            "prism-b.internal:8081",
            "[2001:db8::3]:8081"
        ]
    );
    let prometheus = config.join("prometheus.yml");
    let checked = must_pass(
        "promtool",
        &[
            OsStr::new("check"),
            OsStr::new("config"),
            prometheus.as_os_str(),
        ],
    );
    assert!(
        !checked.contains("WARNING"),
        "promtool warns about the rendered config:\n{checked}"
    );
    let rules = read(&config.join("rules/prism-alerts.yml"));
    let links: Vec<&str> = rules
        .lines()
        .filter_map(|line| line.trim().strip_prefix("runbook_url: "))
        .collect();
    assert!(!links.is_empty(), "no runbook_url in the rendered rules");
    for link in links {
        assert!(
            link.trim_matches('"').starts_with(&format!("{RUNBOOK}#")),
            "runbook link {link} is not under {RUNBOOK}"
        );
    }
}

#[test]
fn a_target_that_is_not_host_and_port_is_refused() {
    for target in ["prism-a.internal", "http://prism-a:8081", "a b:8081"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let output = run(
            &[
                "render",
                "--out",
                dir.path().to_str().expect("utf-8 path"),
                "--target",
                target,
            ],
            &[],
        );
        assert!(!output.status.success(), "{target} was accepted");
        assert!(stderr(&output).contains("HOST:PORT"), "{}", stderr(&output));
    }
}

/// `ssh` and `scp` stand-ins on `PATH` that log their arguments and keep a copy of the
/// rendered `.monitoring` directory the deployment uploads.
struct FakeRemote {
    dir: tempfile::TempDir,
}

impl FakeRemote {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("bin dir");
        let log = dir.path().join("calls.log");
        let uploaded = dir.path().join("uploaded");
        for (tool, body) in [
            ("ssh", String::new()),
            (
                "scp",
                format!(
                    "for arg in \"$@\"; do case \"$arg\" in */.monitoring) cp -rp \"$arg\" '{}';; esac; done\n",
                    uploaded.display()
                ),
            ),
        ] {
            let path = bin.join(tool);
            std::fs::write(
                &path,
                format!(
                    "#!/bin/sh\necho \"{tool} $*\" >>'{}'\n{body}",
                    log.display()
                ),
            )
            .expect("write fake tool");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .expect("make fake tool executable");
        }
        std::fs::create_dir(&uploaded).expect("uploaded dir");
        Self { dir }
    }

    fn path_env(&self) -> String {
        format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("calls.log")).unwrap_or_default()
    }

    fn uploaded(&self) -> PathBuf {
        self.dir.path().join("uploaded/.monitoring")
    }

    fn deploy(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut all = vec!["production", "--host", "mon.corp.example"];
        all.extend_from_slice(args);
        let path = self.path_env();
        let mut env = env.to_vec();
        env.push(("PATH", &path));
        run(&all, &env)
    }
}

#[test]
fn production_refuses_without_targets_runbook_receivers_or_grafana_password_and_touches_nothing() {
    let remote = FakeRemote::new();
    let output = remote.deploy(&[], &[]);
    assert!(
        !output.status.success(),
        "production deployed without settings"
    );
    let message = stderr(&output);
    for named in [
        "--target",
        "--runbook-url",
        "at least one alert receiver",
        "PRISM_GRAFANA_ADMIN_PASSWORD",
        "nothing was deployed",
    ] {
        assert!(message.contains(named), "{named} not named:\n{message}");
    }
    assert_eq!(
        remote.calls(),
        "",
        "ssh or scp ran although the deployment was refused"
    );

    let mut webhook_without_token = vec![
        ("PRISM_WEBHOOK_URL", "https://hooks.corp.example/a"),
        ("PRISM_GRAFANA_ADMIN_PASSWORD", "grafana-secret"),
    ];
    let output = remote.deploy(
        &[
            "--target",
            "prism-a.internal:8081",
            "--runbook-url",
            RUNBOOK,
        ],
        &webhook_without_token,
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("PRISM_WEBHOOK_TOKEN"),
        "{}",
        stderr(&output)
    );
    assert_eq!(remote.calls(), "");

    webhook_without_token.push(("PRISM_WEBHOOK_TOKEN", "webhook-secret"));
    let output = remote.deploy(
        &[
            "--target",
            "prism-a.internal:8081",
            "--runbook-url",
            RUNBOOK,
            "--dry-run",
        ],
        &webhook_without_token,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(remote.calls(), "", "--dry-run ran ssh or scp");
}

#[test]
fn production_ships_the_rendered_stack_and_starts_compose() {
    let remote = FakeRemote::new();
    let mut env = ALL_RECEIVERS.to_vec();
    env.push(("PRISM_GRAFANA_ADMIN_PASSWORD", "grafana-secret"));
    let output = remote.deploy(
        &[
            "--user",
            "ops",
            "--target",
            "prism-a.internal:8081",
            "--target",
            "prism-b.internal:8081",
            "--runbook-url",
            RUNBOOK,
        ],
        &env,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let calls = remote.calls();
    let lines: Vec<&str> = calls.lines().collect();
    assert_eq!(lines.len(), 4, "{calls}");
    assert!(
        lines[0].starts_with("ssh ") && lines[0].contains("ops@mon.corp.example"),
        "{calls}"
    );
    assert!(
        lines[1].starts_with("scp ") && lines[1].contains("docker-compose.monitoring.yml"),
        "{calls}"
    );
    assert!(
        lines[2].starts_with("scp ") && lines[2].contains("/.monitoring "),
        "{calls}"
    );
    assert!(
        lines[3].contains("docker compose -f docker-compose.monitoring.yml up -d"),
        "{calls}"
    );

    let uploaded = remote.uploaded();
    assert_eq!(
        targets(&uploaded.join("config/targets/prism.json")),
        ["prism-a.internal:8081", "prism-b.internal:8081"]
    );
    assert_eq!(
        targets(&uploaded.join("config/targets/node.json")),
        ["node-exporter:9100"]
    );
    let alertmanager = uploaded.join("config/alertmanager.yml");
    assert!(read(&alertmanager).contains("/etc/alertmanager/secrets/webhook_token"));
    amtool_accepts(&alertmanager);
    assert_eq!(
        read(&uploaded.join("secrets/grafana_admin_password")),
        "grafana-secret"
    );
    assert!(read(&uploaded.join("config/rules/prism-alerts.yml")).contains(RUNBOOK));
}
