//! The `on(event, handler)` style: a task that reads the notification stream and runs the handler
//! registered for each event name.
//!
//! Handlers run concurrently up to [`CONCURRENT`]; the next notification is read only when one of
//! those slots is free, so slow handlers slow delivery (the server keeps the rest). Per customer
//! the server sends one notification at a time, so a customer's notifications stay in order.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use tokio::sync::Semaphore;

use crate::notification::EVENTS;
use crate::{Elarian, Error, Notification, Result};

/// Handlers running at once.
pub const CONCURRENT: usize = 16;

type Handler = Arc<dyn Fn(Notification) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

#[derive(Default)]
pub(crate) struct Handlers {
    by_event: Mutex<HashMap<String, Handler>>,
}

impl Handlers {
    fn get(&self, event: &str) -> Option<Handler> {
        self.by_event.lock().unwrap_or_else(|p| p.into_inner()).get(event).cloned()
    }
}

pub(crate) fn register<F, Fut>(client: &Elarian, event: &str, handler: F) -> Result<()>
where
    F: Fn(Notification) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    if !EVENTS.contains(&event) {
        return Err(Error::Invalid(format!("unknown event {event:?}; known: {}", EVENTS.join(", "))));
    }
    let handler: Handler = Arc::new(move |n| Box::pin(handler(n)));
    let mut slot = client.inner.handlers.lock().unwrap_or_else(|p| p.into_inner());
    let handlers = match slot.as_ref() {
        Some(h) => h.clone(),
        None => {
            let stream = client.notifications()?;
            let handlers = Arc::new(Handlers::default());
            tokio::spawn(run(stream, handlers.clone()));
            *slot = Some(handlers.clone());
            handlers
        }
    };
    handlers.by_event.lock().unwrap_or_else(|p| p.into_inner()).insert(event.to_string(), handler);
    Ok(())
}

async fn run(mut stream: crate::Notifications, handlers: Arc<Handlers>) {
    let slots = Arc::new(Semaphore::new(CONCURRENT));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let Some(notification) = stream.next().await else { return };
        match handlers.get(notification.name()) {
            Some(handler) => {
                tokio::spawn(async move {
                    let _permit = permit;
                    handler(notification).await;
                });
            }
            None => drop(notification), // acknowledged empty
        }
    }
}
