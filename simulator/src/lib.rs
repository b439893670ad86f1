//! `hodi-simulator`: a scriptable phone that plays one customer over a Hodi simulator socket.
//!
//! For app developers' own tests: a [`Phone`] sends SMS, dials USSD and walks menus, answers calls
//! and presses digits, pays, confirms or declines checkouts — and waits for what the app sends
//! back ([`Phone::expect_message`], [`Phone::expect_call`], [`Phone::expect_checkout`]).
//!
//! ```no_run
//! # async fn t() -> Result<(), hodi_simulator::Error> {
//! use std::time::Duration;
//! let phone = hodi_simulator::Phone::connect(hodi_sdk::Options::from_env()?, "+254700000001").await?;
//! let menu = phone.dial_ussd("*384#").await?;
//! assert!(menu.text.contains("Welcome"));
//! phone.send_sms("21356", "OK").await?;
//! let sms = phone.expect_message(Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```
//!
//! The same steps drive the `hodi-simulator` CLI ([`script`]), interactively or from a file.
//!
//! Owns the customer's side of one number; never talks to the app's socket.

pub mod describe;
pub mod script;

use std::sync::Mutex;
use std::time::Duration;

use hodi_sdk::model::{cash, channel};
use hodi_sdk::wire::{self, inbound_message_body, CustomerEventDirection, VoiceCallStatus};
use hodi_sdk::{Options, Simulator, SimulatorEvent};
use tokio::sync::mpsc;

/// What a phone step can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Sdk(#[from] hodi_sdk::Error),
    #[error("nothing {0} arrived within {1:?}")]
    Timeout(&'static str, Duration),
    #[error("{0}")]
    Step(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// A USSD screen the app showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UssdScreen {
    pub text: String,
    /// The app ended the session.
    pub terminal: bool,
}

/// A message the app sent to this phone.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingMessage {
    pub message_id: String,
    pub channel: Option<wire::MessagingChannelNumber>,
    pub message: wire::OutboundMessage,
}

impl IncomingMessage {
    /// The message as a person would read it.
    pub fn text(&self) -> String {
        describe::message(&self.message)
    }
}

/// A call ringing (placed by the app) or in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub session_id: String,
    pub channel: String,
}

/// A checkout waiting for the customer's confirmation.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkout {
    pub transaction_id: String,
    pub value: Option<wire::Cash>,
}

#[derive(Default)]
struct State {
    ussd: Option<(String, String)>,
    call: Option<Call>,
    checkout: Option<Checkout>,
}

/// One customer's phone.
pub struct Phone {
    sim: Simulator,
    number: String,
    events: tokio::sync::Mutex<mpsc::Receiver<SimulatorEvent>>,
    state: Mutex<State>,
}

fn session_id(kind: &str) -> String {
    format!("{kind}-{}", uuid::Uuid::new_v4().simple())
}

impl Phone {
    /// Connects a simulator socket for `number` and waits (10 s) until it is up.
    pub async fn connect(options: Options, number: impl Into<String>) -> Result<Phone> {
        let sim = Simulator::connect(options);
        sim.connected(Duration::from_secs(10)).await?;
        Phone::with(sim, number)
    }

    /// A phone on an existing simulator socket (takes the socket's events).
    pub fn with(sim: Simulator, number: impl Into<String>) -> Result<Phone> {
        let events = sim.events()?;
        Ok(Phone { sim, number: number.into(), events: tokio::sync::Mutex::new(events), state: Mutex::default() })
    }

    pub fn number(&self) -> &str {
        &self.number
    }

    pub fn simulator(&self) -> &Simulator {
        &self.sim
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn send(
        &self,
        channel: wire::MessagingChannelNumber,
        entry: inbound_message_body::Entry,
        session: Option<String>,
    ) -> Result<hodi_sdk::SimulatorReply> {
        let parts = vec![wire::InboundMessageBody { entry: Some(entry) }];
        Ok(self.sim.receive_message(self.number.clone(), channel, parts, session).await?)
    }

    /// Texts `text` to the app's SMS number `to`.
    pub async fn send_sms(&self, to: &str, text: &str) -> Result<()> {
        self.send(channel::sms(to), inbound_message_body::Entry::Text(text.into()), None).await.map(drop)
    }

    /// Sends `text` on any messaging channel (WhatsApp, Telegram, Messenger, email…).
    pub async fn send_text(&self, to: wire::MessagingChannelNumber, text: &str) -> Result<()> {
        self.send(to, inbound_message_body::Entry::Text(text.into()), None).await.map(drop)
    }

    fn screen(reply: hodi_sdk::SimulatorReply) -> Result<UssdScreen> {
        match reply.message.and_then(|m| m.body).and_then(|b| b.entry) {
            Some(wire::outbound_message_body::Entry::Ussd(menu)) => {
                Ok(UssdScreen { text: menu.text, terminal: menu.is_terminal })
            }
            Some(wire::outbound_message_body::Entry::Text(text)) => Ok(UssdScreen { text, terminal: true }),
            None => Err(Error::Step(
                "the app answered without a USSD menu (does it handle `ussdSession`?); the session is over".into(),
            )),
            Some(other) => {
                Err(Error::Step(format!("the app answered the USSD session with a non-USSD message: {other:?}")))
            }
        }
    }

    async fn ussd(&self, code: &str, session: &str, input: &str) -> Result<UssdScreen> {
        let entry = inbound_message_body::Entry::Ussd(wire::UssdInputMessageBody {
            status: wire::UssdSessionStatus::Active as i32,
            text: Some(input.into()),
        });
        let screen = Self::screen(self.send(channel::ussd(code), entry, Some(session.into())).await?)?;
        let mut state = self.state();
        state.ussd = (!screen.terminal).then(|| (code.to_string(), session.to_string()));
        Ok(screen)
    }

    /// Dials a USSD code; returns the app's first screen.
    pub async fn dial_ussd(&self, code: &str) -> Result<UssdScreen> {
        self.ussd(code, &session_id("ussd"), "").await
    }

    /// Answers the open USSD screen with `input`.
    pub async fn ussd_reply(&self, input: &str) -> Result<UssdScreen> {
        let Some((code, session)) = self.state().ussd.clone() else {
            return Err(Error::Step("no USSD session is open; dial first".into()));
        };
        self.ussd(&code, &session, input).await
    }

    async fn voice(&self, call: &Call, part: wire::VoiceCallInputMessageBody) -> Result<Vec<wire::VoiceCallAction>> {
        let reply = self
            .send(
                channel::voice(&call.channel),
                inbound_message_body::Entry::Voice(part),
                Some(call.session_id.clone()),
            )
            .await?;
        Ok(match reply.message.and_then(|m| m.body).and_then(|b| b.entry) {
            Some(wire::outbound_message_body::Entry::Voice(plan)) => plan.actions,
            _ => Vec::new(),
        })
    }

    fn current_call(&self) -> Result<Call> {
        self.state().call.clone().ok_or_else(|| Error::Step("no call is in progress".into()))
    }

    /// Calls the app's voice number; returns the app's first actions.
    pub async fn call(&self, to: &str) -> Result<Vec<wire::VoiceCallAction>> {
        let call = Call { session_id: session_id("call"), channel: to.to_string() };
        self.state().call = Some(call.clone());
        self.voice(&call, voice_part(CustomerEventDirection::Inbound, VoiceCallStatus::Answered, None)).await
    }

    /// Answers the ringing call (placed by the app); returns its actions.
    pub async fn answer(&self) -> Result<Vec<wire::VoiceCallAction>> {
        let call = self.current_call()?;
        self.voice(&call, voice_part(CustomerEventDirection::Outbound, VoiceCallStatus::Answered, None)).await
    }

    /// Presses `digits` on the call in progress; returns the app's next actions.
    pub async fn press(&self, digits: &str) -> Result<Vec<wire::VoiceCallAction>> {
        let call = self.current_call()?;
        let mut part = voice_part(CustomerEventDirection::Outbound, VoiceCallStatus::Active, None);
        part.dtmf_digits = Some(digits.into());
        self.voice(&call, part).await
    }

    /// Hangs up the call in progress.
    pub async fn hang_up(&self) -> Result<()> {
        let call = self.current_call()?;
        let part = voice_part(
            CustomerEventDirection::Outbound,
            VoiceCallStatus::Completed,
            Some(wire::VoiceCallHangupCause::NormalClearing),
        );
        self.voice(&call, part).await?;
        self.state().call = None;
        Ok(())
    }

    /// Pays `amount` of `currency` to the app's payment channel (paybill) `to`; returns the
    /// provider transaction id used.
    pub async fn pay(&self, to: &str, currency: &str, amount: f64) -> Result<String> {
        let id = session_id("mpesa");
        self.sim
            .receive_payment(
                id.clone(),
                channel::cellular_payments(to),
                self.number.clone(),
                cash(currency, amount),
                wire::PaymentStatus::Success,
            )
            .await?;
        Ok(id)
    }

    /// Confirms the latest checkout the app asked for.
    pub async fn confirm_checkout(&self) -> Result<()> {
        self.finish_checkout(wire::PaymentStatus::Success).await
    }

    /// Declines the latest checkout the app asked for.
    pub async fn decline_checkout(&self) -> Result<()> {
        self.finish_checkout(wire::PaymentStatus::Failed).await
    }

    async fn finish_checkout(&self, status: wire::PaymentStatus) -> Result<()> {
        let Some(checkout) = self.state().checkout.take() else {
            return Err(Error::Step("no checkout is waiting; expect one first".into()));
        };
        self.sim.update_payment_status(checkout.transaction_id, status).await?;
        Ok(())
    }

    /// The next event for this number (others are skipped), or None after `wait`. Calls and
    /// checkouts it returns become the current ones for [`Phone::answer`] and
    /// [`Phone::confirm_checkout`].
    pub async fn next_event(&self, wait: Duration) -> Option<SimulatorEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut events = self.events.lock().await;
        loop {
            let event = tokio::time::timeout_at(deadline, events.recv()).await.ok().flatten()?;
            let mine = match &event {
                SimulatorEvent::SendChannelPayment(_) => false,
                other => other.customer_number() == Some(self.number.as_str()),
            };
            if !mine {
                continue;
            }
            let mut state = self.state();
            match &event {
                SimulatorEvent::MakeVoiceCall(c) => {
                    state.call = Some(Call {
                        session_id: c.session_id.clone(),
                        channel: c.channel_number.as_ref().map(|n| n.number.clone()).unwrap_or_default(),
                    });
                }
                SimulatorEvent::CheckoutPayment(c) => {
                    state.checkout =
                        Some(Checkout { transaction_id: c.transaction_id.clone(), value: c.value.clone() });
                }
                _ => {}
            }
            return Some(event);
        }
    }

    async fn expect<T>(
        &self,
        what: &'static str,
        wait: Duration,
        pick: impl Fn(SimulatorEvent) -> Option<T>,
    ) -> Result<T> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let event = self.next_event(left).await.ok_or(Error::Timeout(what, wait))?;
            if let Some(found) = pick(event) {
                return Ok(found);
            }
        }
    }

    /// Waits for the next message the app sends this phone (SMS, chat, email…).
    pub async fn expect_message(&self, wait: Duration) -> Result<IncomingMessage> {
        self.expect("a message", wait, |e| match e {
            SimulatorEvent::SendMessage(m) => Some(IncomingMessage {
                message_id: m.message_id,
                channel: m.channel_number,
                message: m.message.unwrap_or_default(),
            }),
            _ => None,
        })
        .await
    }

    /// Waits for the app to call this phone.
    pub async fn expect_call(&self, wait: Duration) -> Result<Call> {
        self.expect("a call", wait, |e| match e {
            SimulatorEvent::MakeVoiceCall(c) => {
                Some(Call { session_id: c.session_id, channel: c.channel_number.map(|n| n.number).unwrap_or_default() })
            }
            _ => None,
        })
        .await
    }

    /// Waits for the app to ask this phone to confirm a checkout.
    pub async fn expect_checkout(&self, wait: Duration) -> Result<Checkout> {
        self.expect("a checkout", wait, |e| match e {
            SimulatorEvent::CheckoutPayment(c) => Some(Checkout { transaction_id: c.transaction_id, value: c.value }),
            _ => None,
        })
        .await
    }
}

fn voice_part(
    direction: CustomerEventDirection,
    status: VoiceCallStatus,
    hangup: Option<wire::VoiceCallHangupCause>,
) -> wire::VoiceCallInputMessageBody {
    wire::VoiceCallInputMessageBody {
        direction: direction as i32,
        status: status as i32,
        hangup_cause: hangup.map_or(0, |h| h as i32),
        ..Default::default()
    }
}
