//! HTTPS API targets: a self-signed certificate (generated here) in front of a real Prism,
//! trusted with `--cacert`, refused clearly without it, accepted loudly with `--insecure`.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::{TestServer, loadgen};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A TLS-terminating proxy (as staging's reverse proxy) for `upstream`, with a self-signed
/// certificate for `localhost`; returns its address and the certificate as PEM.
fn tls_proxy(runtime: &tokio::runtime::Runtime, upstream: SocketAddr) -> (SocketAddr, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("self-signed certificate");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let chain = vec![CertificateDer::from(certified.cert.der().to_vec())];
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("certificate and key match");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = runtime
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    runtime.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (addr, certified.cert.pem())
}

#[test]
fn https_target_with_a_self_signed_certificate_works_with_cacert_and_fails_clearly_without() {
    let server = TestServer::open();
    let runtime = tokio::runtime::Runtime::new().expect("proxy runtime");
    let (proxy, pem) = tls_proxy(&runtime, server.api);
    let dir = tempfile::tempdir().expect("temporary directory");
    let cacert = dir.path().join("staging-ca.pem");
    std::fs::write(&cacert, pem).expect("certificate written");
    let cacert = cacert.to_string_lossy().into_owned();
    let target = format!("https://localhost:{}", proxy.port());
    let base = [
        "api",
        "--target",
        &target,
        "--rate",
        "50",
        "--duration",
        "1s",
    ];

    let run = loadgen(&[&base[..], &["--cacert", &cacert]].concat());
    run.assert_clean(50.0);
    assert_eq!(run.report().workloads[0].target, target);

    let run = loadgen(&base);
    assert_eq!(run.code, Some(3), "nothing succeeded: {}", run.stderr);
    let summary = &run.report().workloads[0].summary;
    assert_eq!(
        summary.errors_by_kind.get("tls"),
        Some(&50),
        "{:?}",
        summary.errors_by_kind
    );
    assert!(
        run.stderr.contains("TLS handshake failed") && run.stderr.contains("--cacert"),
        "the failure says what went wrong and what to do: {}",
        run.stderr
    );

    let run = loadgen(&[&base[..], &["--insecure"]].concat());
    run.assert_clean(50.0);
    assert!(
        run.stderr.contains("WARNING: --insecure"),
        "--insecure says so loudly: {}",
        run.stderr
    );
}
