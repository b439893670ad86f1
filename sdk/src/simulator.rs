//! [`Simulator`]: the customer's side of the world on a simulator socket — messages and payments
//! from customers in, and what apps send to customers out (as [`SimulatorEvent`]s).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hodi_rsocket::{BoxFuture, Payload, RemoteError, Responder};
use hodi_wire as wire;
use prost::Message;
use tokio::sync::{broadcast, mpsc};
use wire::server_to_simulator_notification::Entry;
use wire::simulator_to_server_command::Entry as SimCmd;

use crate::connection::{ConnectionEvent, Link};
use crate::options::Options;
use crate::{Error, Result};

/// What apps sent towards customers, as the customer's side receives it.
#[derive(Debug, Clone, PartialEq)]
pub enum SimulatorEvent {
    SendMessage(wire::SendMessageSimulatorNotification),
    MakeVoiceCall(wire::MakeVoiceCallSimulatorNotification),
    SendCustomerPayment(wire::SendCustomerPaymentSimulatorNotification),
    SendChannelPayment(wire::SendChannelPaymentSimulatorNotification),
    CheckoutPayment(wire::CheckoutPaymentSimulatorNotification),
}

impl SimulatorEvent {
    /// The spec's event name.
    pub fn name(&self) -> &'static str {
        match self {
            SimulatorEvent::SendMessage(_) => "sendMessage",
            SimulatorEvent::MakeVoiceCall(_) => "makeVoiceCall",
            SimulatorEvent::SendCustomerPayment(_) => "sendCustomerPayment",
            SimulatorEvent::SendChannelPayment(_) => "sendChannelPayment",
            SimulatorEvent::CheckoutPayment(_) => "checkoutPayment",
        }
    }

    /// The customer number this event is for, where it has one.
    pub fn customer_number(&self) -> Option<&str> {
        match self {
            SimulatorEvent::SendMessage(n) => n.customer_number.as_ref().map(|c| c.number.as_str()),
            SimulatorEvent::MakeVoiceCall(n) => n.customer_number.as_ref().map(|c| c.number.as_str()),
            SimulatorEvent::SendCustomerPayment(n) => n.customer_number.as_ref().map(|c| c.number.as_str()),
            SimulatorEvent::CheckoutPayment(n) => n.customer_number.as_ref().map(|c| c.number.as_str()),
            SimulatorEvent::SendChannelPayment(_) => None,
        }
    }
}

/// The simulator's answer to a customer's message: for USSD and voice, the app's reply (a menu,
/// voice actions) is in `message`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatorReply {
    pub description: String,
    pub message: Option<wire::OutboundMessage>,
}

/// Events not yet read before the server is told this simulator cannot take more.
pub const EVENT_BUFFER: usize = 1024;

/// A simulator socket. Cheap to clone; closes when the last clone is dropped or on `disconnect`.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<SimInner>,
}

struct SimInner {
    link: Arc<Link>,
    events: Mutex<Option<mpsc::Receiver<SimulatorEvent>>>,
}

impl Drop for SimInner {
    fn drop(&mut self) {
        self.link.close();
    }
}

impl Simulator {
    /// Starts connecting in the background (see [`crate::Elarian::connect`]).
    pub fn connect(options: Options) -> Simulator {
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let link = Link::start(options, true, Arc::new(SimulatorResponder { tx }), None);
        Simulator { inner: Arc::new(SimInner { link, events: Mutex::new(Some(rx)) }) }
    }

    pub async fn connected(&self, wait: Duration) -> Result<()> {
        self.inner.link.wait_connected(wait).await
    }

    pub fn connection_events(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.inner.link.events()
    }

    pub fn disconnect(&self) {
        self.inner.link.close();
    }

    /// What apps send to customers, in arrival order. Taken once. Unread events are kept up to
    /// [`EVENT_BUFFER`]; beyond that the server is told this simulator did not take them.
    pub fn events(&self) -> Result<mpsc::Receiver<SimulatorEvent>> {
        self.inner
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| Error::Invalid("simulator events were already taken".into()))
    }

    async fn command(&self, entry: SimCmd) -> Result<SimulatorReply> {
        let data = wire::SimulatorToServerCommand { entry: Some(entry) }.encode_to_vec();
        let reply = self.inner.link.request(Payload::new(Bytes::from(data))).await?;
        let r = wire::SimulatorToServerCommandReply::decode(reply.data)
            .map_err(|e| Error::Protocol(format!("reply is not a SimulatorToServerCommandReply: {e}")))?;
        if !r.status {
            return Err(Error::refused(r.description));
        }
        Ok(SimulatorReply { description: r.description, message: r.message })
    }

    /// A customer (`customer_number`) sends `parts` to the app on `channel`.
    pub async fn receive_message(
        &self,
        customer_number: impl Into<String>,
        channel: wire::MessagingChannelNumber,
        parts: Vec<wire::InboundMessageBody>,
        session_id: Option<String>,
    ) -> Result<SimulatorReply> {
        self.command(SimCmd::ReceiveMessage(wire::ReceiveMessageSimulatorCommand {
            customer_number: customer_number.into(),
            channel_number: Some(channel),
            parts,
            session_id,
            cost: None,
            duration: None,
        }))
        .await
    }

    /// A customer pays into the org through a payment channel (`transaction_id` is the provider's).
    pub async fn receive_payment(
        &self,
        transaction_id: impl Into<String>,
        channel: wire::PaymentChannelNumber,
        customer_number: impl Into<String>,
        value: wire::Cash,
        status: wire::PaymentStatus,
    ) -> Result<SimulatorReply> {
        self.command(SimCmd::ReceivePayment(wire::ReceivePaymentSimulatorCommand {
            transaction_id: transaction_id.into(),
            channel_number: Some(channel),
            customer_number: customer_number.into(),
            value: Some(value),
            status: status as i32,
        }))
        .await
    }

    /// The customer confirms (`Success`) or declines (`Failed`) a checkout, by transaction id.
    pub async fn update_payment_status(
        &self,
        transaction_id: impl Into<String>,
        status: wire::PaymentStatus,
    ) -> Result<SimulatorReply> {
        self.command(SimCmd::UpdatePaymentStatus(wire::UpdatePaymentStatusSimulatorCommand {
            transaction_id: transaction_id.into(),
            status: status as i32,
        }))
        .await
    }
}

/// Takes the server's notifications for the customer's side.
struct SimulatorResponder {
    tx: mpsc::Sender<SimulatorEvent>,
}

impl Responder for SimulatorResponder {
    fn request_response(&self, payload: Payload) -> BoxFuture<std::result::Result<Payload, RemoteError>> {
        let result = wire::ServerToSimulatorNotification::decode(payload.data)
            .map_err(|e| RemoteError::invalid(format!("not a ServerToSimulatorNotification: {e}")))
            .and_then(|n| {
                let event = match n.entry {
                    Some(Entry::SendMessage(m)) => SimulatorEvent::SendMessage(m),
                    Some(Entry::MakeVoiceCall(m)) => SimulatorEvent::MakeVoiceCall(m),
                    Some(Entry::SendCustomerPayment(m)) => SimulatorEvent::SendCustomerPayment(m),
                    Some(Entry::SendChannelPayment(m)) => SimulatorEvent::SendChannelPayment(m),
                    Some(Entry::CheckoutPayment(m)) => SimulatorEvent::CheckoutPayment(m),
                    None => return Err(RemoteError::invalid("empty simulator notification")),
                };
                self.tx.try_send(event).map_err(|e| match e {
                    mpsc::error::TrySendError::Full(_) => RemoteError::application(format!(
                        "this simulator has {EVENT_BUFFER} unread events and takes no more until they are read"
                    )),
                    mpsc::error::TrySendError::Closed(_) => RemoteError::application("this simulator stopped reading"),
                })
            });
        Box::pin(async move {
            result.map(|()| Payload::new(Bytes::from(wire::ServerToSimulatorNotificationReply {}.encode_to_vec())))
        })
    }
}
