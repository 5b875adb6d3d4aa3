//! Unit tests of the configuration loader: sources, precedence, and problems in user terms.

use super::*;
use std::io::Write;

fn sources(
    yaml: Option<&str>,
    env: &[(&str, &str)],
) -> (ConfigSources, Option<tempfile::NamedTempFile>) {
    let file = yaml.map(|text| {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(text.as_bytes()).expect("write");
        file
    });
    let sources = ConfigSources {
        file: file.as_ref().map(|f| f.path().to_path_buf()),
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        flags: Vec::new(),
    };
    (sources, file)
}

#[test]
fn no_sources_give_the_defaults() {
    let (sources, _file) = sources(None, &[]);
    assert_eq!(sources.load(), Ok(Config::default()));
}

#[test]
fn flag_beats_env_beats_file_beats_default() {
    let yaml = "server:\n  tcp_port: 7001\n  api_port: 7002\n  max_connections: 10\n";
    let env = [
        ("PRISM_SERVER_API_PORT", "7102"),
        ("PRISM_SERVER_MAX_CONNECTIONS", "20"),
    ];
    let (mut sources, _file) = sources(Some(yaml), &env);
    sources.flag("server.max_connections", "--max-connections", 30);
    let config = sources.load().expect("valid");
    assert_eq!(config.server.tcp_port, 7001, "file beats default");
    assert_eq!(config.server.api_port, 7102, "env beats file");
    assert_eq!(config.server.max_connections, 30, "flag beats env");
    assert_eq!(config.server.idle_timeout_secs, 30, "default stays");
}

#[test]
fn nameservers_take_bare_names_and_names_with_addresses() {
    use crate::config::Nameserver;
    let yaml = "dns:\n  nameservers:\n    - {name: ns1, addresses: [192.0.2.1, 2001:db8::1]}\n    - ns2.example.net.\n";
    let (sources, _file) = sources(Some(yaml), &[]);
    let config = sources.load().expect("valid");
    assert_eq!(
        config.dns.nameservers,
        vec![
            Nameserver::WithAddresses {
                name: "ns1".into(),
                addresses: vec![[192, 0, 2, 1].into(), "2001:db8::1".parse().expect("v6")],
            },
            Nameserver::from("ns2.example.net."),
        ]
    );
}

#[test]
fn a_nameserver_address_that_is_not_one_names_the_key() {
    let yaml = "dns:\n  nameservers:\n    - {name: ns1, addresses: [not-an-address]}\n";
    let (sources, _file) = sources(Some(yaml), &[]);
    let err = sources.load().expect_err("bad address").to_string();
    assert!(err.contains("dns.nameservers"), "{err}");
}

#[test]
fn section_names_with_underscores_map_from_env() {
    let (sources, _file) = sources(None, &[("PRISM_RATE_LIMIT_BURST", "7")]);
    assert_eq!(sources.load().expect("valid").rate_limit.burst, 7);
}

#[test]
fn fractional_check_interval_is_accepted() {
    let (sources, _file) = sources(Some("heartbeat:\n  check_interval: 0.5\n"), &[]);
    let config = sources.load().expect("valid");
    assert_eq!(
        config.heartbeat.check_interval(),
        std::time::Duration::from_millis(500)
    );
}

#[test]
fn unknown_key_is_named_with_the_accepted_keys() {
    let (sources, _file) = sources(Some("server:\n  tcpport: 1\n"), &[]);
    let message = sources.load().expect_err("refused").to_string();
    assert!(message.contains("server.tcpport"), "{message}");
    assert!(message.contains("tcp_port"), "{message}");
}

#[test]
fn unknown_env_key_in_a_known_section_is_refused() {
    let (sources, _file) = sources(None, &[("PRISM_SERVER_TCPPORT", "1")]);
    let message = sources.load().expect_err("refused").to_string();
    assert!(
        message.contains("PRISM_SERVER_TCPPORT") && message.contains("tcp_port"),
        "{message}"
    );
}

#[test]
fn bad_enum_value_lists_the_accepted_values() {
    let (sources, _file) = sources(None, &[("PRISM_AUTH_MODE", "anything")]);
    let message = sources.load().expect_err("refused").to_string();
    assert!(message.contains("auth.mode"), "{message}");
    assert!(
        message.contains("token") && message.contains("open"),
        "{message}"
    );
}

#[test]
fn every_problem_of_a_file_is_reported_at_once_in_user_terms() {
    let yaml = "server:\n  tcpport: 1\n  tcp_port: 70000\nlogging:\n  level: loud\n\
                heartbeat:\n  check_interval: 0\nbogus:\n  a: 1\n";
    let (sources, _file) = sources(Some(yaml), &[("PRISM_AUTH_MODE", "sometimes")]);
    let err = sources.load().expect_err("refused");
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    for key in [
        "auth.mode",
        "server.tcpport",
        "server.tcp_port",
        "logging.level",
        "heartbeat.check_interval",
        "bogus",
    ] {
        assert!(keys.contains(&key), "{key} missing from {err}");
    }
    let message = err.to_string();
    assert!(
        message.contains("expected a port number 0–65535"),
        "{message}"
    );
    assert!(!message.contains("u16"), "{message}");
}

#[test]
fn out_of_range_values_name_the_key_and_range() {
    let (sources, _file) = sources(Some("database:\n  write_behind_ms: 5000\n"), &[]);
    let message = sources.load().expect_err("refused").to_string();
    assert!(
        message.contains("database.write_behind_ms") && message.contains("1 to 1000"),
        "{message}"
    );
}
