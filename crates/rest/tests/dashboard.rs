//! The live dashboard at `/` of the HTTPS door: the page and its two assets, embedded, served
//! without a token; its stream, chart and levers need the session cookie of a one-time link
//! (401 without, 403 for a spent or made-up link); no simulation-mode API here (the page finds
//! out it is live from that 404).

mod common;

use cmksim_rest::dashboard;
use common::*;
use http::{Method, StatusCode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_door_serves_the_dashboard_at_its_root() {
    let door = start().await;
    let mut client = door.client("localhost").await;
    for (path, content_type, body) in [
        ("/", "text/html", dashboard::INDEX_HTML),
        (
            dashboard::JS_PATH,
            "text/javascript",
            dashboard::DASHBOARD_JS,
        ),
        (dashboard::CSS_PATH, "text/css", dashboard::DASHBOARD_CSS),
    ] {
        let answer = client.send(Method::GET, path, &[], None).await.unwrap();
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        let served = answer.headers[http::header::CONTENT_TYPE].to_str().unwrap();
        assert!(served.starts_with(content_type), "{path}: {served}");
        assert_eq!(answer.body, body.as_bytes(), "{path}: the embedded file");
    }
    let probe = client
        .send(Method::GET, "/_cmksim/demo/state?after=0", &[], None)
        .await
        .unwrap();
    assert_eq!(
        probe.status,
        StatusCode::NOT_FOUND,
        "live mode: no demo API"
    );
    // The event stream the page reads in live mode still needs the administrator's token.
    let events = client
        .send(Method::GET, "/_cmksim/events", &[], None)
        .await
        .unwrap();
    assert_eq!(events.status, StatusCode::UNAUTHORIZED);
    for path in [
        "/_cmksim/dashboard/session",
        "/_cmksim/dashboard/stream",
        "/_cmksim/dashboard/swimlanes.svg",
    ] {
        let answer = client.send(Method::GET, path, &[], None).await.unwrap();
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{path}: no session"
        );
    }
    let lever = client
        .send(
            Method::POST,
            "/_cmksim/dashboard/lever",
            &[],
            Some(cmksim_rest::client::Bytes::from_static(
                br#"{"lever":"disable-key"}"#,
            )),
        )
        .await
        .unwrap();
    assert_eq!(
        lever.status,
        StatusCode::UNAUTHORIZED,
        "a lever without a session"
    );
    let made_up = client
        .send(Method::GET, "/_cmksim/dashboard/login?code=00", &[], None)
        .await
        .unwrap();
    assert_eq!(made_up.status, StatusCode::FORBIDDEN);
    door.stop.send_replace(true);
}
