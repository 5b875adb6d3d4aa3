//! Several generators, one report: two loadgen processes with disjoint `--host-offset`
//! ranges against one server at the same time, then `merge`.

mod common;

use common::{TestServer, finished, loadgen, loadgen_command};

#[test]
fn two_generators_with_disjoint_host_ranges_merge_into_the_sum() {
    let server = TestServer::open();
    let target = server.registration.to_string();
    let spawn = |offset: &str, dir: &tempfile::TempDir| {
        loadgen_command(
            &[
                "heartbeat",
                "--target",
                &target,
                "--hosts",
                "10",
                "--host-offset",
                offset,
                "--rate",
                "100",
                "--duration",
                "2s",
                "--quiet",
                "--threshold",
                "errors==0",
            ],
            dir.path(),
        )
        .spawn()
        .expect("loadgen starts")
    };
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("temporary directory"),
        tempfile::tempdir().expect("temporary directory"),
    );
    let (a, b) = (spawn("0", &dir_a), spawn("10", &dir_b));
    let a = finished(a.wait_with_output().expect("first run"), dir_a);
    let b = finished(b.wait_with_output().expect("second run"), dir_b);
    let (one, two) = (a.report().clone(), b.report().clone());
    assert_eq!(
        (a.code, b.code),
        (Some(0), Some(0)),
        "{}\n{}",
        a.stderr,
        b.stderr
    );

    let a_json = a
        .dir
        .path()
        .join("report.json")
        .to_string_lossy()
        .into_owned();
    let b_json = b
        .dir
        .path()
        .join("report.json")
        .to_string_lossy()
        .into_owned();
    let merged = loadgen(&["merge", &a_json, &b_json]);
    assert_eq!(merged.code, Some(0), "{}", merged.stderr);
    let report = merged.report();
    let total = &report.total;
    assert_eq!(total.sent, one.total.sent + two.total.sent);
    assert_eq!(total.ok, one.total.ok + two.total.ok);
    assert_eq!(total.scheduled, 400);
    assert_eq!(total.completed, one.total.completed + two.total.completed);
    assert_eq!(
        report.workloads.len(),
        1,
        "one workload run by two generators"
    );
    assert_eq!(report.workloads[0].summary.sent, 400);
    assert_eq!(
        report.thresholds.len(),
        1,
        "the inputs' threshold is evaluated again"
    );
    assert!(report.thresholds[0].passed);
    assert_eq!(report.merged_from, [a_json.clone(), b_json.clone()]);
    let html = std::fs::read_to_string(&merged.html).expect("merged HTML written");
    assert!(html.contains("Merged from"), "the HTML names its inputs");

    // Disjoint ranges: the twenty names 0…19 are all registered.
    let dns = server.dns.to_string();
    loadgen(&[
        "dns",
        "--target",
        &dns,
        "--hosts",
        "20",
        "--rate",
        "100",
        "--duration",
        "1s",
    ])
    .assert_clean(100.0);

    // Thresholds are evaluated on the merged numbers: 400 answers in 2 s is 200/s.
    let merged = loadgen(&["merge", &a_json, &b_json, "--threshold", "rate>=150"]);
    assert_eq!(merged.code, Some(0), "{}", merged.stdout);
    assert!(
        one.total.achieved_rate < 150.0,
        "one generator alone stays below"
    );
    let merged = loadgen(&["merge", &a_json, &b_json, "--threshold", "rate>=250"]);
    assert_eq!(merged.code, Some(99), "{}", merged.stdout);
}

#[test]
fn merge_refuses_a_file_that_is_not_a_report() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let bogus = dir.path().join("bogus.json");
    std::fs::write(&bogus, "{\"schema\": \"something else\"}").expect("written");
    let run = loadgen(&["merge", &bogus.to_string_lossy()]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("not a prism-loadgen JSON report"),
        "{}",
        run.stderr
    );
}
