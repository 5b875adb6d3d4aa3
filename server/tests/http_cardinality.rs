//! The `endpoint` label is the route template, never the raw path: 10 000 requests to distinct
//! host URLs (and to distinct unknown paths) add one series per template, not one per URL.

use std::sync::Arc;

use prism_server::store::MemoryStore;
use prism_testkit::TestServer;
use prism_testkit::exposition::sum;
use prism_testkit::setup::{create_token, token_config};

const REQUESTS: usize = 10_000;
/// Requests in flight at once.
const CONCURRENCY: usize = 16;

fn series_of(text: &str, name: &str) -> Vec<String> {
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .filter_map(|line| line.rsplit_once(' ').map(|(series, _)| series.to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_distinct_host_urls_make_one_series_per_route_template() {
    let store = MemoryStore::new();
    let admin = create_token(&store, "ops", true).await;
    let server = Arc::new(
        TestServer::builder(token_config())
            .store(store)
            .api()
            .start()
            .await,
    );
    let mut workers = Vec::new();
    for worker in 0..CONCURRENCY {
        let server = Arc::clone(&server);
        let admin = admin.clone();
        workers.push(tokio::spawn(async move {
            for n in (worker..REQUESTS).step_by(CONCURRENCY) {
                // Half name hosts that do not exist (404), half paths with no route at all.
                let path = if n % 2 == 0 {
                    format!("/api/hosts/host-{n}")
                } else {
                    format!("/random/{n}/path")
                };
                let status = server
                    .api()
                    .get(&path, Some(&admin))
                    .await
                    .status()
                    .as_u16();
                assert_eq!(status, 404, "{path}");
            }
        }));
    }
    for worker in workers {
        worker.await.expect("worker");
    }
    let text = server.api().scrape().await;
    let requests = series_of(&text, "prism_http_requests_total");
    assert_eq!(
        requests,
        [
            "prism_http_requests_total{endpoint=\"/api/hosts/{hostname}\",method=\"GET\",status=\"404\"}",
            "prism_http_requests_total{endpoint=\"unmatched\",method=\"GET\",status=\"404\"}",
        ],
        "one series per template, whatever the URLs"
    );
    assert_eq!(
        sum(&text, "prism_http_requests_total", &[]),
        REQUESTS as f64,
        "every request counted"
    );
    let durations = series_of(&text, "prism_http_request_duration_seconds_count");
    assert_eq!(durations.len(), 2, "{durations:?}");
}
