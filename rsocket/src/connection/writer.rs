//! The writer task: takes frames off the connection's outbound queue and writes them, batching
//! whatever is already queued into one flush (one write per wake-up, not one per frame).
//!
//! Owns the transport's sink. A write or flush that makes no progress for `write_timeout` (the
//! peer stopped reading) shuts the connection. Each frame's place in the byte budget is given
//! back once the frame is in the sink's buffer.

use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::shared::{Outbound, Shared};
use crate::frame::Frame;
use crate::transport::FrameSink;

/// Frames written before each flush, at most.
const WRITE_BATCH: usize = 64;

/// Writes until the session closes, then returns None; or, on a resumable connection, until its
/// transport is lost (`lost` cancelled, or a write fails), then returns the queue so that the
/// next transport's writer carries on from it.
pub(super) async fn write_loop(
    mut writer: FrameSink,
    mut rx: mpsc::Receiver<Outbound>,
    shared: Arc<Shared>,
    timeout: Duration,
    lost: CancellationToken,
) -> Option<mpsc::Receiver<Outbound>> {
    let stalled = || format!("the peer did not read for {} ms", timeout.as_millis());
    let write = async |writer: &mut FrameSink, frame: Frame| -> Result<(), String> {
        match tokio::time::timeout(timeout, writer.feed(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("write failed: {e}")),
            Err(_) => Err(stalled()),
        }
    };
    let failure = 'outer: loop {
        let first = tokio::select! {
            biased;
            _ = lost.cancelled() => return Some(rx),
            msg = rx.recv() => msg,
            _ = shared.closed.cancelled() => None,
        };
        let Some(mut msg) = first else { break None };
        // Batch whatever is already queued into one flush.
        let mut batched = 0;
        loop {
            match msg {
                Outbound::Close => {
                    let _ = tokio::time::timeout(timeout, writer.close()).await;
                    break 'outer None;
                }
                Outbound::Frame(frame, _place) => {
                    // Logged before it is written: a frame lost with the transport is sent again.
                    if let Some(resume) = &shared.resume {
                        resume.sent(&frame);
                    }
                    // `_place` goes back to the budget once the frame is in the sink's buffer.
                    if let Err(e) = write(&mut writer, *frame).await {
                        break 'outer Some(e);
                    }
                }
            }
            batched += 1;
            // Check the cap before taking another frame: a frame taken off the queue must be written.
            if batched == WRITE_BATCH {
                break;
            }
            match rx.try_recv() {
                Ok(next) => msg = next,
                Err(_) => break,
            }
        }
        match tokio::time::timeout(timeout, writer.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => break Some(format!("flush failed: {e}")),
            Err(_) => break Some(stalled()),
        }
    };
    match failure {
        Some(reason) if shared.resume.is_some() && !shared.closed.is_cancelled() => {
            debug!(%reason, "transport lost; the session waits to be resumed");
            lost.cancel();
            Some(rx)
        }
        Some(reason) => {
            debug!(%reason, "closing");
            shared.shut(&reason);
            None
        }
        None => {
            shared.closed.cancel();
            None
        }
    }
}
