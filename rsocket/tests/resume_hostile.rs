//! Hostile peers against resumption: RESUME frames that name no session, guess tokens, claim
//! positions the server never sent, tokens too short or already in use, and detached sessions
//! piling up from one address. Each is refused with the right ERROR, and what a peer can make the
//! server keep (sessions waiting for a resume) stays bounded per address and in time.

use std::time::Duration;

use bytes::Bytes;
use hodi_rsocket::connection::resume::Registry;
use hodi_rsocket::frame::{error_code, Body, Frame};
use hodi_rsocket::Config;

mod common;
use common::*;

fn resumable_setup(token: &[u8]) -> Frame {
    let mut frame = setup_frame(30_000);
    if let Body::Setup(s) = &mut frame.body {
        s.resume_token = Some(Bytes::copy_from_slice(token));
    }
    frame
}

fn resume(token: &[u8], server_position: u64, client_position: u64) -> Frame {
    Frame::new(
        0,
        Body::Resume {
            major_version: 1,
            minor_version: 0,
            token: Bytes::copy_from_slice(token),
            last_received_server_position: server_position,
            first_available_client_position: client_position,
        },
    )
}

fn request(id: u32, data: &str) -> Frame {
    Frame::new(id, Body::RequestResponse { follows: false, payload: hodi_rsocket::Payload::new(data.to_string()) })
}

fn config(window: Duration) -> Config {
    Config { resume: Some(Registry::new(64)), resume_window: window, failed_setups_allowed: 3, ..Config::default() }
}

const TOKEN: &[u8] = b"0123456789abcdef";

#[tokio::test]
async fn resume_tokens_must_be_long_unused_and_known() {
    let addr = echo_server(config(Duration::from_secs(5))).await;
    let mut short = RawPeer::connect_from([127, 0, 1, 1], &addr).await;
    short.send(resumable_setup(b"abc")).await;
    short.expect_error_then_close(error_code::INVALID_SETUP, "at least 16 bytes").await;

    let mut first = RawPeer::connect_from([127, 0, 1, 1], &addr).await;
    first.send(resumable_setup(TOKEN)).await;
    first.send(request(1, "hello")).await;
    assert!(first.recv(Duration::from_secs(2)).await.is_some(), "a resumable session works");
    let mut thief = RawPeer::connect_from([127, 0, 1, 2], &addr).await;
    thief.send(resumable_setup(TOKEN)).await;
    thief.expect_error_then_close(error_code::REJECTED_SETUP, "in use").await;

    // Guessing tokens: refused, and past three refusals an address is barred without a look
    // (even the right token then waits).
    for i in 0..4u8 {
        let mut guess = RawPeer::connect_from([127, 0, 1, 3], &addr).await;
        guess.send(resume(&[i; 16], 0, 0)).await;
        guess.expect_error_then_close(error_code::REJECTED_RESUME, "no session to resume").await;
    }
    let mut barred = RawPeer::connect_from([127, 0, 1, 3], &addr).await;
    barred.send(resume(TOKEN, 0, 0)).await;
    barred.expect_error_then_close(error_code::REJECTED_RESUME, "too many refused").await;
}

#[tokio::test]
async fn positions_the_server_never_sent_end_the_session() {
    let addr = echo_server(config(Duration::from_secs(5))).await;
    let mut peer = RawPeer::connect_from([127, 0, 1, 4], &addr).await;
    peer.send(resumable_setup(TOKEN)).await;
    peer.send(request(1, "hello")).await;
    assert!(peer.recv(Duration::from_secs(2)).await.is_some());
    drop(peer); // the transport is lost: the session waits for a resume

    // It claims to have received a million bytes more than were sent.
    let mut liar = RawPeer::connect_from([127, 0, 1, 4], &addr).await;
    liar.send(resume(TOKEN, 1_000_000, 0)).await;
    liar.expect_error_then_close(error_code::REJECTED_RESUME, "beyond").await;
    // The session is over: its token names nothing now.
    let mut again = RawPeer::connect_from([127, 0, 1, 5], &addr).await;
    again.send(resume(TOKEN, 0, 0)).await;
    again.expect_error_then_close(error_code::REJECTED_RESUME, "no session to resume").await;
}

#[tokio::test]
async fn a_resumed_session_carries_on_where_it_stopped() {
    let addr = echo_server(config(Duration::from_secs(5))).await;
    let mut peer = RawPeer::connect_from([127, 0, 1, 6], &addr).await;
    peer.send(resumable_setup(TOKEN)).await;
    let ask = request(1, "hello");
    let asked = ask.encoded_len() as u64;
    peer.send(ask).await;
    let answer = peer.recv(Duration::from_secs(2)).await.expect("answer");
    let received = answer.encoded_len() as u64;
    drop(peer);
    // Back with what it has (the answer) and what it can send again (from the start).
    let mut back = RawPeer::connect_from([127, 0, 1, 6], &addr).await;
    back.send(resume(TOKEN, received, 0)).await;
    let ok = back.recv(Duration::from_secs(2)).await.expect("RESUME_OK");
    assert_eq!(ok.body, Body::ResumeOk { last_received_client_position: asked }, "the server had the request");
    back.send(request(3, "again")).await;
    let next = back.recv(Duration::from_secs(2)).await.expect("the session answers on the new transport");
    assert_eq!(next.stream_id, 3);
}

#[tokio::test]
async fn detached_sessions_hold_their_address_places_only_for_the_window() {
    let window = Duration::from_millis(800);
    let addr = echo_server(Config { max_connections_per_address: 2, ..config(window) }).await;
    for i in 0..2u8 {
        let mut p = RawPeer::connect_from([127, 0, 1, 7], &addr).await;
        p.send(resumable_setup(&[i; 16])).await;
        p.send(request(1, "in")).await;
        assert!(p.recv(Duration::from_secs(2)).await.is_some());
        drop(p); // detached, waiting for a resume that never comes
    }
    let mut third = RawPeer::connect_from([127, 0, 1, 7], &addr).await;
    third.send(setup_frame(30_000)).await;
    third.expect_error_then_close(error_code::REJECTED_SETUP, "from this address").await;
    // After the window they are gone, and their places with them.
    tokio::time::sleep(window + Duration::from_millis(500)).await;
    let mut later = RawPeer::connect_from([127, 0, 1, 7], &addr).await;
    later.send(setup_frame(30_000)).await;
    later.send(request(1, "in")).await;
    assert!(later.recv(Duration::from_secs(2)).await.is_some(), "places freed after the resume window");
}

#[tokio::test]
async fn a_server_without_resumption_refuses_to_set_up_a_resumable_session() {
    let addr = echo_server(Config::default()).await;
    let mut p = RawPeer::connect(&addr).await;
    p.send(resumable_setup(TOKEN)).await;
    p.expect_error_then_close(error_code::UNSUPPORTED_SETUP, "resume is not enabled").await;
    let mut r = RawPeer::connect(&addr).await;
    r.send(resume(TOKEN, 0, 0)).await;
    r.expect_error_then_close(error_code::REJECTED_RESUME, "not enabled").await;
}
