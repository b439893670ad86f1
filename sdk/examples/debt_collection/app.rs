//! The debt-collection app of the SDK spec, as a reusable piece (the example's `main.rs` runs it;
//! Hodi's integration tests drive it with `hodi-simulator` phones).
//!
//! A reminder falls due → the customer gets an SMS asking them to reply OK. OK → a mobile-money
//! checkout. No answer before the follow-up reminder → a voice call asking them to press 1, which
//! starts the same checkout. The payment's outcome is texted back. Each customer's progress is
//! kept in their app data, so the app holds no state of its own and can restart at any time.

use std::time::Duration;

use hodi_sdk::model::{cash, channel, message, party, voice, AppData, Reminder};
use hodi_sdk::wire::PaymentStatus;
use hodi_sdk::{Customer, Elarian, Event, Notification, Reply};

/// Where the app sends from and collects into.
#[derive(Debug, Clone)]
pub struct Settings {
    pub sms: String,
    pub voice: String,
    pub paybill: String,
    pub purse_id: String,
    pub currency: String,
    /// How long the customer has to answer the SMS before the call.
    pub follow_up: Duration,
}

const DUE: &str = "debt-due";
const FOLLOW_UP: &str = "debt-follow-up";

/// A customer's progress, kept as their app data: `<stage> <amount>`.
fn progress(stage: &str, amount: f64) -> AppData {
    AppData::Text(format!("{stage} {amount}"))
}

fn parse_progress(data: &Option<AppData>) -> Option<(String, f64)> {
    let text = data.as_ref()?.as_text()?;
    let (stage, amount) = text.split_once(' ')?;
    Some((stage.to_string(), amount.parse().ok()?))
}

/// Puts a customer on the collection schedule: the reminder falls due after `after`.
pub async fn enroll(client: &Elarian, number: &str, amount: f64, after: Duration) -> hodi_sdk::Result<()> {
    let customer = client.customer(number);
    customer.update_app_data(progress("enrolled", amount)).await?;
    customer.add_reminder(Reminder::after(DUE, after, amount.to_string())).await?;
    Ok(())
}

/// Registers the app's handlers; the client then runs them as notifications arrive.
pub fn start(client: &Elarian, settings: Settings) -> hodi_sdk::Result<()> {
    let s = settings.clone();
    client.on("reminder", move |n| on_reminder(n, s.clone()))?;
    let s = settings.clone();
    client.on("receivedSms", move |n| on_sms(n, s.clone()))?;
    let s = settings.clone();
    client.on("voiceCall", move |n| on_call(n, s.clone()))?;
    client.on("paymentStatus", move |n| on_payment(n, settings.clone()))?;
    Ok(())
}

async fn on_reminder(n: Notification, s: Settings) {
    let (Some(customer), Event::Reminder(r)) = (n.customer(), &n.event) else { return };
    let key = r.reminder.as_ref().map(|r| r.key.clone()).unwrap_or_default();
    let amount = parse_progress(&n.app_data).map(|(_, a)| a).unwrap_or_default();
    let result = match (key.as_str(), parse_progress(&n.app_data)) {
        (DUE, _) => remind_by_sms(&customer, &s, amount).await.map(|()| progress("texted", amount)),
        // Only if the SMS went unanswered: a customer who said OK is already at checkout.
        (FOLLOW_UP, Some((stage, _))) if stage == "texted" => {
            let call = message::voice(vec![voice::say("Hello, this is your lender calling.")]);
            customer.send_message(channel::voice(&s.voice), call).await.map(|_| progress("called", amount))
        }
        _ => return,
    };
    match result {
        Ok(next) => {
            let _ = n.reply(Reply::default().with_app_data(next)).await;
        }
        Err(e) => tracing::warn!(error = %e, "reminder step failed"),
    }
}

async fn remind_by_sms(customer: &Customer, s: &Settings, amount: f64) -> hodi_sdk::Result<()> {
    let text = format!("You owe {} {amount}. Reply OK to pay now by mobile money.", s.currency);
    customer.send_message(channel::sms(&s.sms), message::text(text)).await?;
    customer.add_reminder(Reminder::after(FOLLOW_UP, s.follow_up, String::new())).await?;
    Ok(())
}

async fn checkout(customer: &Customer, s: &Settings, amount: f64) -> hodi_sdk::Result<()> {
    let number = customer.number().await?;
    let from = party::customer(number, channel::cellular_payments(&s.paybill));
    customer
        .client()
        .initiate_payment(from, party::purse(&s.purse_id), cash(&s.currency, amount), "debt repayment")
        .await?;
    Ok(())
}

async fn on_sms(n: Notification, s: Settings) {
    let (Some(customer), Event::ReceivedMessage(m)) = (n.customer(), &n.event) else { return };
    let said_ok = m.text().is_some_and(|t| t.trim().eq_ignore_ascii_case("ok"));
    let Some((stage, amount)) = parse_progress(&n.app_data) else { return };
    if !said_ok || stage != "texted" {
        return;
    }
    let _ = customer.cancel_reminder(FOLLOW_UP).await;
    match checkout(&customer, &s, amount).await {
        Ok(()) => {
            let _ = n.reply(Reply::default().with_app_data(progress("checkout", amount))).await;
        }
        Err(e) => tracing::warn!(error = %e, "checkout failed"),
    }
}

async fn on_call(n: Notification, s: Settings) {
    let (Some(customer), Event::ReceivedMessage(m)) = (n.customer(), &n.event) else { return };
    let Some(call) = m.voice() else { return };
    let Some((_, amount)) = parse_progress(&n.app_data) else { return };
    let digits = call.dtmf_digits.clone().unwrap_or_default();
    let actions = if digits == "1" {
        if let Err(e) = checkout(&customer, &s, amount).await {
            tracing::warn!(error = %e, "checkout failed");
        }
        vec![voice::say("We have sent a payment request to your phone. Goodbye.")]
    } else if digits.is_empty() && call.status == hodi_sdk::wire::VoiceCallStatus::Answered as i32 {
        vec![
            voice::say(format!("You owe {} {amount}.", s.currency)),
            voice::get_digits("Press 1 to pay now.", 1, Duration::from_secs(10)),
        ]
    } else if !digits.is_empty() {
        vec![voice::say("Goodbye.")]
    } else {
        return; // hang-up and other call progress: nothing to say
    };
    let stage = if digits == "1" { "checkout" } else { "called" };
    let _ = n.reply(Reply::message(message::voice(actions)).with_app_data(progress(stage, amount))).await;
}

async fn on_payment(n: Notification, s: Settings) {
    let (Some(customer), Event::PaymentStatus(p)) = (n.customer(), &n.event) else { return };
    let Some((_, amount)) = parse_progress(&n.app_data) else { return };
    let (stage, text) = if p.status == PaymentStatus::Success as i32 {
        ("paid", format!("Thank you! We received {} {amount}.", s.currency))
    } else if p.status >= PaymentStatus::Failed as i32 {
        ("unpaid", "Your payment was not completed. We will be in touch.".to_string())
    } else {
        return; // still pending
    };
    if let Err(e) = customer.send_message(channel::sms(&s.sms), message::text(text)).await {
        tracing::warn!(error = %e, "payment receipt not sent");
    }
    let _ = n.reply(Reply::default().with_app_data(progress(stage, amount))).await;
}
