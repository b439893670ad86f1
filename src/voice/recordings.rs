//! Call recordings: WAV files under `<data_dir>/recordings/<call>/<id>.wav`, and the HTTP
//! listener that serves them at the `recordingUrl` apps receive.
//!
//! Owns the recordings folder and its URLs; refuses any path that is not exactly a call id and a
//! recording id (no traversal, no listing).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::media::audio::RATE;

/// Where recordings are kept and how they are reached.
#[derive(Debug, Clone)]
pub struct Recordings {
    dir: PathBuf,
    /// `http://host:port`, or None when the HTTP listener is disabled (files are still written).
    base: Option<String>,
}

fn valid(part: &str) -> bool {
    !part.is_empty() && part.len() <= 80 && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Recordings {
    /// Writes `samples` as an 8 kHz mono WAV for `call`; returns its URL (or file path without HTTP).
    pub async fn save(&self, call: &str, samples: Vec<i16>) -> Result<String> {
        anyhow::ensure!(valid(call), "bad call id for a recording");
        let id = crate::store::new_id("rec_");
        let folder = self.dir.join(call);
        let file = folder.join(format!("{id}.wav"));
        let path = file.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            std::fs::create_dir_all(&folder)?;
            let spec = hound::WavSpec {
                channels: 1,
                sample_rate: RATE,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let mut w = hound::WavWriter::create(&path, spec)?;
            for s in samples {
                w.write_sample(s)?;
            }
            w.finalize()?;
            Ok(())
        })
        .await??;
        Ok(match &self.base {
            Some(base) => format!("{base}/recordings/{call}/{id}.wav"),
            None => format!("file://{}", file.display()),
        })
    }

    fn file(&self, call: &str, name: &str) -> Option<PathBuf> {
        file_in(&self.dir, call, name)
    }
}

/// The file of recording `name` (`<id>.wav`) of `call` under the data directory, if both are
/// plain ids (no traversal): for readers other than this listener (the console's player).
pub fn path(data_dir: &Path, call: &str, name: &str) -> Option<PathBuf> {
    file_in(&data_dir.join("recordings"), call, name)
}

fn file_in(dir: &Path, call: &str, name: &str) -> Option<PathBuf> {
    let id = name.strip_suffix(".wav")?;
    (valid(call) && valid(id)).then(|| dir.join(call).join(name))
}

/// Starts the HTTP listener (when `listen` is not empty).
pub async fn start(
    data_dir: &Path,
    listen: &str,
    shutdown: CancellationToken,
) -> Result<(Recordings, Option<SocketAddr>)> {
    let dir = data_dir.join("recordings");
    if listen.trim().is_empty() {
        return Ok((Recordings { dir, base: None }, None));
    }
    let listener = tokio::net::TcpListener::bind(listen.trim()).await.with_context(|| {
        format!("voice.recordings_http = {listen:?}: cannot listen there (in use, or not an address of this host)")
    })?;
    let local = listener.local_addr()?;
    let recordings = Recordings { dir, base: Some(format!("http://{local}")) };
    let app = axum::Router::new()
        .route("/recordings/{call}/{name}", axum::routing::get(serve))
        .with_state(Arc::new(recordings.clone()));
    info!(%local, "recordings served over HTTP");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await;
    });
    Ok((recordings, Some(local)))
}

async fn serve(State(r): State<Arc<Recordings>>, UrlPath((call, name)): UrlPath<(String, String)>) -> Response {
    let Some(path) = r.file(&call, &name) else {
        return (StatusCode::NOT_FOUND, "no such recording").into_response();
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "audio/wav")], bytes).into_response(),
        Err(_) => (StatusCode::NOT_FOUND, "no such recording").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_call_and_recording_ids_name_files() {
        let r = Recordings { dir: PathBuf::from("/data/recordings"), base: None };
        assert_eq!(r.file("call_01ab", "rec_01cd.wav"), Some(PathBuf::from("/data/recordings/call_01ab/rec_01cd.wav")));
        for (call, name) in
            [("..", "x.wav"), ("call", "../../etc/passwd"), ("call", "rec.txt"), ("a/b", "r.wav"), ("", "r.wav")]
        {
            assert_eq!(r.file(call, name), None, "{call}/{name}");
        }
    }
}
