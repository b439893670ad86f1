//! Prompts to play: WAV audio from a local file or an http(s) URL, decoded to 8 kHz once and
//! shared by every call playing it (hold music, IVR menus).
//!
//! Owns fetching (bounded in time and size) and the cache; does not own playing (see
//! [`super::stream`]). Files are re-read when their size or modification time changes; URLs are
//! fetched again after [`URL_TTL`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};

use super::audio;

/// Decoded prompts kept at once.
const CACHE: usize = 64;
/// How long a fetched URL is played from the cache.
pub const URL_TTL: Duration = Duration::from_secs(600);
/// Largest prompt fetched (about 20 minutes of 8 kHz 16-bit mono, more at higher rates).
const MAX_BYTES: usize = 20 * 1024 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// What a cached prompt was made from.
#[derive(Clone, PartialEq)]
enum Source {
    File { len: u64, modified: SystemTime },
    Url { fetched: Instant },
}

struct Entry {
    key: String,
    source: Source,
    samples: Arc<Vec<i16>>,
}

static PROMPTS: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

fn cached(key: &str, fresh: impl Fn(&Source) -> bool) -> Option<Arc<Vec<i16>>> {
    PROMPTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .find(|e| e.key == key && fresh(&e.source))
        .map(|e| e.samples.clone())
}

fn remember(key: &str, source: Source, samples: Arc<Vec<i16>>) {
    let mut cache = PROMPTS.lock().unwrap_or_else(|p| p.into_inner());
    cache.retain(|e| e.key != key);
    if cache.len() >= CACHE {
        cache.remove(0);
    }
    cache.push(Entry { key: key.to_string(), source, samples });
}

async fn decode(bytes: Vec<u8>) -> Result<Arc<Vec<i16>>> {
    Ok(Arc::new(tokio::task::spawn_blocking(move || audio::decode_wav(&bytes)).await??))
}

/// The prompt at `location`: `http://…`, `https://…`, `file:///…` or a path.
pub async fn load(location: &str) -> Result<Arc<Vec<i16>>> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return load_url(location).await;
    }
    if location.contains("://") && !location.starts_with("file://") {
        bail!("cannot play {location:?}: only http, https and file URLs");
    }
    let path = location.strip_prefix("file://").unwrap_or(location);
    let meta = tokio::fs::metadata(path).await.with_context(|| format!("reading {path}"))?;
    let source = Source::File { len: meta.len(), modified: meta.modified()? };
    if let Some(samples) = cached(path, |s| *s == source) {
        return Ok(samples);
    }
    let samples = decode(tokio::fs::read(path).await?).await?;
    remember(path, source, samples.clone());
    Ok(samples)
}

async fn load_url(url: &str) -> Result<Arc<Vec<i16>>> {
    if let Some(samples) = cached(url, |s| matches!(s, Source::Url { fetched } if fetched.elapsed() < URL_TTL)) {
        return Ok(samples);
    }
    let answer =
        crate::channel::http::get(url, &[], FETCH_TIMEOUT, MAX_BYTES).await.map_err(|e| anyhow::anyhow!(e.0))?;
    if !(200..300).contains(&answer.status) {
        bail!("{url}: HTTP {}", answer.status);
    }
    let bytes = answer.body.to_vec();
    let samples = decode(bytes).await?;
    remember(url, Source::Url { fetched: Instant::now() }, samples.clone());
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unplayable_locations_say_why() {
        let e = load("ftp://example.invalid/a.wav").await.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("only http, https and file"), "{e}");
        let e = load("/nonexistent/prompt.wav").await.err().map(|e| format!("{e:#}")).unwrap_or_default();
        assert!(e.contains("/nonexistent/prompt.wav"), "{e}");
        // A server that answers 404.
        let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/missing.wav", server.local_addr().expect("addr"));
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            if let Ok((mut c, _)) = server.accept().await {
                let mut buf = [0u8; 1024];
                let _ = c.read(&mut buf).await;
                let _ = c.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
            }
        });
        let e = load(&url).await.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("404"), "{e}");
    }
}
