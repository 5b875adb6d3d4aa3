//! Registration messages and frames as the deployed clients send them, for every test helper.

/// A registration payload in the compact form, with `auth_token` when `token` is given.
pub fn registration(hostname: &str, token: Option<&str>) -> Vec<u8> {
    let mut message = serde_json::json!({
        "version": "1.0",
        "type": "registration",
        "timestamp": "2026-11-26T10:00:00",
        "hostname": hostname,
    });
    if let Some(token) = token {
        message["auth_token"] = token.into();
    }
    serde_json::to_vec(&message).expect("json")
}

/// `payload` with its 4-byte big-endian length prefix.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut framed = u32::try_from(payload.len())
        .expect("test frames are small")
        .to_be_bytes()
        .to_vec();
    framed.extend_from_slice(payload);
    framed
}

/// A whole registration frame.
pub fn registration_frame(hostname: &str, token: Option<&str>) -> Vec<u8> {
    frame(&registration(hostname, token))
}
