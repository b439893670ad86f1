//! Africa's Talking: SMS out through its messaging API, and what its callbacks mean.
//!
//! Out: `POST {base_url}/version1/messaging` with the `apiKey` header and the form fields
//! `username`, `to`, `message` and `from` (our short code or sender id); the answer's
//! `SMSMessageData.Recipients[0]` says whether the message was taken (`statusCode` 100 Processed,
//! 101 Sent, 102 Queued, with its `messageId`) or refused (401–409: a risk hold, a bad sender id
//! or number, no balance, a blacklisted or DND number, no route), or the gateway failed (500–502,
//! tried again).
//!
//! In (parsed here, served by [`crate::webhooks`]): delivery reports (`id`, `status`,
//! `failureReason`), incoming messages (`from`, `to`, `text`, `id`) and USSD steps (`sessionId`,
//! `serviceCode`, `phoneNumber`, `text`: every input so far joined by `*`), each a form POST.

use std::time::Duration;

use serde::Deserialize;

use super::events::{ChannelEvent, Received};
use super::payments::PaymentTransport;
use super::worker::{Refusal, Transport};
use super::{body, http};
use crate::config::providers::AfricasTalking as Settings;
use crate::store::payment_requests::{PaymentRequest, RequestKind};
use crate::store::providers::{AcceptedPart, QueuedSend};
use crate::wire::{MessageDeliveryStatus, MessagingChannel, PaymentStatus};

/// One Africa's Talking account.
pub struct AfricasTalking {
    name: String,
    settings: Settings,
    api_key: String,
}

impl std::fmt::Debug for AfricasTalking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfricasTalking").field("name", &self.name).field("username", &self.settings.username).finish()
    }
}

impl AfricasTalking {
    /// Refuses settings that can never work (no username, no API key).
    pub fn new(name: &str, settings: &Settings) -> Result<AfricasTalking, String> {
        if settings.username.is_empty() {
            return Err("username is required (\"sandbox\" for the sandbox)".into());
        }
        let api_key = settings.api_key()?;
        if api_key.is_empty() {
            return Err("api_key or api_key_env is required".into());
        }
        Ok(AfricasTalking { name: name.to_string(), settings: settings.clone(), api_key: api_key.expose().to_string() })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendAnswer {
    #[serde(rename = "SMSMessageData")]
    data: SendData,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendData {
    #[serde(default)]
    message: String,
    #[serde(default)]
    recipients: Vec<Recipient>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Recipient {
    status_code: u16,
    #[serde(default)]
    status: String,
    #[serde(default)]
    message_id: String,
}

/// An API answer's JSON, or what its HTTP status means: bad credentials and 5xx are tried again
/// (the operator can fix the first), 429 slows down, another 4xx is final.
fn answered<T: serde::de::DeserializeOwned>(status: u16, body: &[u8]) -> Result<T, Refusal> {
    let text = String::from_utf8_lossy(body);
    match status {
        200 | 201 => {}
        401 | 403 => {
            return Err(Refusal::Transient(format!("Africa's Talking refused our credentials ({status}): {text}")))
        }
        429 => return Err(Refusal::Throttled(format!("Africa's Talking: too many requests: {text}"))),
        400..=499 => return Err(Refusal::Permanent(format!("Africa's Talking answered {status}: {text}"))),
        _ => return Err(Refusal::Transient(format!("Africa's Talking answered {status}: {text}"))),
    }
    serde_json::from_slice(body)
        .map_err(|e| Refusal::Transient(format!("Africa's Talking's answer does not parse ({e}): {text}")))
}

/// What the messaging API's answer means for the message.
fn outcome(status: u16, body: &[u8]) -> Result<Vec<AcceptedPart>, Refusal> {
    let answer: SendAnswer = answered(status, body)?;
    let Some(r) = answer.data.recipients.into_iter().next() else {
        return Err(Refusal::Permanent(format!("Africa's Talking took no recipient: {}", answer.data.message)));
    };
    match r.status_code {
        100..=102 if !r.message_id.is_empty() && r.message_id != "None" => {
            Ok(vec![AcceptedPart { provider_message_id: r.message_id, part: 1, parts: 1 }])
        }
        500..=599 => Err(Refusal::Transient(format!("Africa's Talking: {} ({})", r.status, r.status_code))),
        _ => Err(Refusal::Permanent(format!("Africa's Talking: {} ({})", r.status, r.status_code))),
    }
}

impl Transport for AfricasTalking {
    async fn send(&self, message: &QueuedSend) -> Result<Vec<AcceptedPart>, Refusal> {
        let text = body::text(body::outbound(message)?, "Africa's Talking SMS")?;
        let url = format!("{}/version1/messaging", self.settings.base_url.trim_end_matches('/'));
        let body = http::form(&[
            ("username", &self.settings.username),
            ("to", &message.customer_number),
            ("message", &text),
            ("from", &message.channel_number),
        ]);
        let headers = [("apiKey", self.api_key.as_str()), ("Accept", "application/json")];
        let timeout = Duration::from_secs(self.settings.timeout_secs.max(1));
        let answer = http::post(&url, &headers, "application/x-www-form-urlencoded", body, timeout)
            .await
            .map_err(|e| Refusal::Transient(e.0))?;
        tracing::debug!(provider = %self.name, status = answer.status, "Africa's Talking answered");
        outcome(answer.status, &answer.body)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AirtimeAnswer {
    #[serde(default)]
    error_message: String,
    #[serde(default)]
    responses: Vec<AirtimeResponse>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AirtimeResponse {
    #[serde(default)]
    status: String,
    #[serde(default)]
    error_message: String,
    #[serde(default)]
    request_id: String,
}

/// What the airtime API's answer means: the request id its status callback will name.
fn airtime_outcome(status: u16, body: &[u8]) -> Result<String, Refusal> {
    let answer: AirtimeAnswer = answered(status, body)?;
    let Some(r) = answer.responses.into_iter().next() else {
        return Err(Refusal::Permanent(format!("Africa's Talking sent no airtime: {}", answer.error_message)));
    };
    match r.status.as_str() {
        "Sent" | "Success" if !r.request_id.is_empty() && r.request_id != "None" => Ok(r.request_id),
        _ => Err(Refusal::Permanent(format!("Africa's Talking: airtime {}: {}", r.status, r.error_message))),
    }
}

/// Airtime: a payout on an `airtime` channel number. `POST {base_url}/version1/airtime/send` with
/// `username` and `recipients` (a JSON list of `phoneNumber`, `currencyCode`, `amount`) as a form,
/// and our transaction id as the `Idempotency-Key`, so asking again after a crash sends nothing
/// twice.
impl PaymentTransport for AfricasTalking {
    async fn request(&self, r: &PaymentRequest) -> Result<String, Refusal> {
        if r.kind != RequestKind::Pay {
            return Err(Refusal::Permanent("Africa's Talking airtime only pays out".into()));
        }
        let amount = super::payments::amount_text(&r.currency, r.amount);
        let recipients = serde_json::json!([{
            "phoneNumber": r.destination,
            "currencyCode": r.currency,
            "amount": amount,
        }])
        .to_string();
        let url = format!("{}/version1/airtime/send", self.settings.base_url.trim_end_matches('/'));
        let body = http::form(&[("username", &self.settings.username), ("recipients", &recipients)]);
        let headers =
            [("apiKey", self.api_key.as_str()), ("Accept", "application/json"), ("Idempotency-Key", &r.transaction_id)];
        let timeout = Duration::from_secs(self.settings.timeout_secs.max(1));
        let answer = http::post(&url, &headers, "application/x-www-form-urlencoded", body, timeout)
            .await
            .map_err(|e| Refusal::Transient(e.0))?;
        tracing::debug!(provider = %self.name, status = answer.status, "Africa's Talking airtime answered");
        airtime_outcome(answer.status, &answer.body)
    }
}

/// An airtime status callback: the request id, and whether the airtime arrived.
pub fn airtime_status(body: &[u8]) -> Result<(String, PaymentStatus, String), String> {
    let f = http::form_fields(body);
    let id = http::required(&f, "requestId")?;
    let state = http::required(&f, "status")?;
    let status = match state {
        "Success" => PaymentStatus::Success,
        "Failed" => PaymentStatus::Failed,
        other => return Err(format!("unknown airtime status {other:?}")),
    };
    let why = f.get("description").cloned().unwrap_or_default();
    Ok((id.to_string(), status, format!("{state}: {why}")))
}

/// A delivery report: a receipt, or `None` for a state on the way (Sent, Submitted, Buffered).
pub fn delivery_report(provider: &str, body: &[u8]) -> Result<Option<ChannelEvent>, String> {
    let f = http::form_fields(body);
    let id = http::required(&f, "id")?;
    let state = http::required(&f, "status")?;
    let status = match state {
        "Success" => MessageDeliveryStatus::Delivered,
        "Failed" | "AbsentSubscriber" => MessageDeliveryStatus::Failed,
        "Rejected" => MessageDeliveryStatus::Rejected,
        "Expired" => MessageDeliveryStatus::Expired,
        "Sent" | "Submitted" | "Buffered" => return Ok(None),
        other => return Err(format!("unknown status {other:?}")),
    };
    let reason = match f.get("failureReason").filter(|r| !r.is_empty()) {
        Some(why) => format!("{state}: {why}"),
        None => state.to_string(),
    };
    Ok(Some(ChannelEvent::Receipt {
        provider: provider.to_string(),
        provider_message_id: id.to_string(),
        status,
        reason,
    }))
}

/// An incoming SMS.
pub fn incoming_message(provider: &str, body: &[u8]) -> Result<ChannelEvent, String> {
    let f = http::form_fields(body);
    Ok(ChannelEvent::Received(Received {
        provider: provider.to_string(),
        channel: MessagingChannel::Sms,
        channel_number: http::required(&f, "to")?.to_string(),
        customer_number: http::required(&f, "from")?.to_string(),
        text: f.get("text").cloned().unwrap_or_default(),
        provider_message_id: f.get("id").filter(|id| !id.is_empty()).cloned(),
        email: None,
    }))
}

/// One USSD step as the gateway posts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UssdStep {
    pub session_id: String,
    pub service_code: String,
    pub phone_number: String,
    /// What the customer typed last (empty when they have just dialled).
    pub input: String,
}

pub fn ussd_step(body: &[u8]) -> Result<UssdStep, String> {
    let f = http::form_fields(body);
    let text = f.get("text").map(String::as_str).unwrap_or_default();
    Ok(UssdStep {
        session_id: http::required(&f, "sessionId")?.to_string(),
        service_code: http::required(&f, "serviceCode")?.to_string(),
        phone_number: http::required(&f, "phoneNumber")?.to_string(),
        // Every input so far, joined by `*`: the last is this step's.
        input: text.rsplit('*').next().unwrap_or_default().to_string(),
    })
}

/// The gateway's answer to a USSD step: `CON` keeps the session open, `END` closes it.
pub fn ussd_answer(menu: &str, terminal: bool) -> String {
    format!("{} {menu}", if terminal { "END" } else { "CON" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_messaging_answer_decides_sent_refused_or_try_again() {
        let ok = br#"{"SMSMessageData":{"Message":"Sent to 1/1 Total Cost: KES 0.8000","Recipients":[{"statusCode":101,"number":"+254711000001","status":"Success","cost":"KES 0.8000","messageId":"ATXid_1"}]}}"#;
        assert_eq!(
            outcome(201, ok),
            Ok(vec![AcceptedPart { provider_message_id: "ATXid_1".into(), part: 1, parts: 1 }])
        );
        let bad_number = br#"{"SMSMessageData":{"Message":"Sent to 0/1","Recipients":[{"statusCode":403,"number":"x","status":"InvalidPhoneNumber","cost":"0","messageId":"None"}]}}"#;
        assert!(matches!(outcome(201, bad_number), Err(Refusal::Permanent(why)) if why.contains("InvalidPhoneNumber")));
        let gateway = br#"{"SMSMessageData":{"Message":"","Recipients":[{"statusCode":501,"number":"x","status":"GatewayError","messageId":"None"}]}}"#;
        assert!(matches!(outcome(201, gateway), Err(Refusal::Transient(_))));
        assert!(matches!(outcome(401, b"The supplied authentication is invalid"), Err(Refusal::Transient(_))));
        assert!(matches!(outcome(502, b"bad gateway"), Err(Refusal::Transient(_))));
        assert!(matches!(outcome(201, b"not json"), Err(Refusal::Transient(_))));
    }

    #[test]
    fn airtime_answers_and_callbacks_follow_the_documented_contract() {
        let sent = br#"{"errorMessage":"None","numSent":1,"totalAmount":"KES 100.0000","totalDiscount":"KES 4.0000","responses":[{"phoneNumber":"+254711000001","errorMessage":"None","amount":"KES 100.0000","status":"Sent","requestId":"ATQid_1","discount":"KES 4.0000"}]}"#;
        assert_eq!(airtime_outcome(201, sent), Ok("ATQid_1".into()));
        let failed = br#"{"errorMessage":"None","numSent":0,"responses":[{"phoneNumber":"+1","errorMessage":"Invalid phone number","status":"Failed","requestId":"None"}]}"#;
        assert!(matches!(airtime_outcome(201, failed), Err(Refusal::Permanent(why)) if why.contains("Invalid phone")));
        assert!(matches!(airtime_outcome(500, b"oops"), Err(Refusal::Transient(_))));
        assert_eq!(
            airtime_status(b"phoneNumber=%2B254711000001&description=Airtime+Delivered+Successfully&status=Success&requestId=ATQid_1&discount=KES+0.6000&value=KES+100.0000"),
            Ok(("ATQid_1".into(), PaymentStatus::Success, "Success: Airtime Delivered Successfully".into()))
        );
        assert!(airtime_status(b"status=Success").is_err());
        assert!(airtime_status(b"requestId=x&status=Maybe").is_err());
    }

    #[test]
    fn callbacks_parse_and_refuse_what_is_missing() {
        let receipt = delivery_report(
            "at",
            b"id=ATXid_1&status=Failed&phoneNumber=%2B254711000001&failureReason=UserInBlacklist",
        )
        .expect("parses")
        .expect("a receipt");
        assert_eq!(
            receipt,
            ChannelEvent::Receipt {
                provider: "at".into(),
                provider_message_id: "ATXid_1".into(),
                status: MessageDeliveryStatus::Failed,
                reason: "Failed: UserInBlacklist".into()
            }
        );
        assert_eq!(delivery_report("at", b"id=ATXid_1&status=Buffered"), Ok(None));
        assert!(delivery_report("at", b"status=Success").is_err());
        assert!(delivery_report("at", b"id=x&status=Exploded").is_err());
        let step =
            ussd_step(b"sessionId=ATUid_1&serviceCode=*384%23&phoneNumber=%2B254711000001&text=1*2").expect("parses");
        assert_eq!((step.service_code.as_str(), step.input.as_str()), ("*384#", "2"));
        assert_eq!(ussd_step(b"sessionId=s&serviceCode=*1%23&phoneNumber=1&text=").expect("parses").input, "");
        assert!(incoming_message("at", b"from=%2B254711000001&text=hi").is_err(), "no to");
        assert_eq!(ussd_answer("1. Pay", false), "CON 1. Pay");
    }
}
