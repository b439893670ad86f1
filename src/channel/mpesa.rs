//! M-Pesa through Safaricom's Daraja API: the requests payments make, and what its callbacks mean.
//!
//! Out (each with `Authorization: Bearer <token>`; the token comes from
//! `GET {base_url}/oauth/v1/generate?grant_type=client_credentials` with the consumer key and
//! secret as Basic auth, and is kept until shortly before its `expires_in`):
//! - a checkout (money in) is an STK push, `POST /mpesa/stkpush/v1/processrequest`: the short code,
//!   `Password` = base64(short code + passkey + timestamp), the `Timestamp` (Nairobi time,
//!   `YYYYMMDDHHmmss`), `TransactionType`, whole-shilling `Amount`, the customer's number as
//!   `PartyA` and `PhoneNumber`, our short code as `PartyB`, `CallBackURL`, `AccountReference` (≤ 12
//!   characters) and `TransactionDesc` (≤ 13). Accepted: `ResponseCode` "0" and a
//!   `CheckoutRequestID`, which the result callback names.
//! - a payout (money out) is a B2C payment, `POST /mpesa/b2c/v3/paymentrequest`, with our
//!   transaction id as `OriginatorConversationID` (Daraja refuses a second request with the same
//!   one, so asking again after a crash cannot pay twice), the initiator and its security
//!   credential, `CommandID`, `Amount`, `PartyA` (short code), `PartyB` (the customer),
//!   `Remarks`, `QueueTimeOutURL`, `ResultURL`, `Occassion` (sic). Accepted: `ResponseCode` "0"
//!   and a `ConversationID`.
//!
//! A refusal with HTTP 400 (a bad number, amount or short code) is final; 401 drops the token and
//! tries again; 429 is throttling; anything else is tried again.
//!
//! In (parsed here, served by [`crate::webhooks`]): the STK result (`Body.stkCallback`), the B2C
//! result and queue timeout (`Result`), and C2B validation and confirmation (a customer paying
//! the short code from their phone), each JSON. `ResultCode` 0 is success; the rest map onto
//! Elarian's payment statuses ([`result_status`]).

use std::time::{Duration, Instant};

use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::http;
use super::payments::PaymentTransport;
use super::worker::Refusal;
use crate::config::providers::Mpesa as Settings;
use crate::store::payment_requests::{PaymentRequest, RequestKind};
use crate::wire::PaymentStatus;

/// A token is renewed this long before Daraja says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// One Daraja app and short code.
pub struct Mpesa {
    name: String,
    settings: Settings,
    consumer_secret: String,
    passkey: String,
    security_credential: String,
    /// `{public_url}/hooks/{name}/{token}`: where result callbacks are sent.
    hooks: String,
    token: Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for Mpesa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mpesa").field("name", &self.name).field("consumer_key", &self.settings.consumer_key).finish()
    }
}

impl Mpesa {
    /// Refuses settings that can never work. Without a passkey it cannot collect, without an
    /// initiator it cannot pay out: such requests are refused one by one, saying so.
    pub fn new(name: &str, settings: &Settings, webhook_token: Option<&str>) -> Result<Mpesa, String> {
        if settings.consumer_key.is_empty() {
            return Err("consumer_key is required".into());
        }
        let consumer_secret = settings.consumer_secret()?;
        if consumer_secret.is_empty() {
            return Err("consumer_secret or consumer_secret_env is required".into());
        }
        if settings.public_url.is_empty() {
            return Err("public_url is required: Daraja sends payment results there".into());
        }
        let Some(token) = webhook_token else {
            return Err(
                "webhook_token or webhook_token_env is required: results are posted to /hooks/<name>/<token>/…".into(),
            );
        };
        Ok(Mpesa {
            name: name.to_string(),
            consumer_secret: consumer_secret.expose().to_string(),
            passkey: settings.passkey()?.expose().to_string(),
            security_credential: settings.security_credential()?.expose().to_string(),
            hooks: format!("{}/hooks/{name}/{token}", settings.public_url.trim_end_matches('/')),
            settings: settings.clone(),
            token: Mutex::new(None),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.base_url.trim_end_matches('/'))
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.settings.timeout_secs.max(1))
    }

    /// A valid access token, fetched when there is none or it is about to expire.
    async fn access_token(&self) -> Result<String, Refusal> {
        let mut cached = self.token.lock().await;
        if let Some((token, until)) = cached.as_ref() {
            if Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.settings.consumer_key, self.consumer_secret));
        let auth = format!("Basic {basic}");
        let url = self.url("/oauth/v1/generate?grant_type=client_credentials");
        let answer = http::get(&url, &[("Authorization", &auth)], self.timeout(), 64 * 1024)
            .await
            .map_err(|e| Refusal::Transient(format!("Daraja's OAuth: {}", e.0)))?;
        let text = String::from_utf8_lossy(&answer.body);
        if answer.status != 200 {
            return Err(Refusal::Transient(format!(
                "Daraja refused our consumer key and secret ({}): {text}",
                answer.status
            )));
        }
        #[derive(Deserialize)]
        struct Token {
            access_token: String,
            #[serde(default)]
            expires_in: Value,
        }
        let token: Token = serde_json::from_slice(&answer.body)
            .map_err(|e| Refusal::Transient(format!("Daraja's OAuth answer does not parse ({e}): {text}")))?;
        // Daraja sends "3599" (a string); take a number too.
        let secs = match &token.expires_in {
            Value::String(s) => s.parse().unwrap_or(3599),
            Value::Number(n) => n.as_u64().unwrap_or(3599),
            _ => 3599,
        };
        let until = Instant::now() + Duration::from_secs(secs).saturating_sub(TOKEN_MARGIN);
        *cached = Some((token.access_token.clone(), until));
        Ok(token.access_token)
    }

    async fn call(&self, path: &str, body: &Value) -> Result<Value, Refusal> {
        let token = self.access_token().await?;
        let bearer = format!("Bearer {token}");
        let headers = [("Authorization", bearer.as_str()), ("Accept", "application/json")];
        let body = serde_json::to_vec(body).map_err(|e| Refusal::Permanent(e.to_string()))?;
        let answer = http::post(&self.url(path), &headers, "application/json", body, self.timeout())
            .await
            .map_err(|e| Refusal::Transient(e.0))?;
        tracing::debug!(provider = %self.name, path, status = answer.status, "Daraja answered");
        if answer.status == 401 {
            *self.token.lock().await = None;
        }
        outcome(answer.status, &answer.body)
    }

    fn stk_push(&self, r: &PaymentRequest, shillings: i64, at: time::OffsetDateTime) -> Result<Value, Refusal> {
        if self.passkey.is_empty() {
            return Err(Refusal::Permanent(format!(
                "provider {} has no passkey (passkey or passkey_env): it cannot ask customers to pay",
                self.name
            )));
        }
        let timestamp = nairobi_timestamp(at);
        let password = base64::engine::general_purpose::STANDARD
            .encode(format!("{}{}{timestamp}", r.channel_number, self.passkey));
        let phone = msisdn(&r.destination);
        Ok(json!({
            "BusinessShortCode": r.channel_number,
            "Password": password,
            "Timestamp": timestamp,
            "TransactionType": self.settings.transaction_type,
            "Amount": shillings,
            "PartyA": phone,
            "PartyB": r.channel_number,
            "PhoneNumber": phone,
            "CallBackURL": format!("{}/stk", self.hooks),
            "AccountReference": account_reference(r),
            "TransactionDesc": clip(if r.narration.is_empty() { "Payment" } else { &r.narration }, 13),
        }))
    }

    fn b2c(&self, r: &PaymentRequest, shillings: i64) -> Result<Value, Refusal> {
        if self.settings.initiator_name.is_empty() || self.security_credential.is_empty() {
            return Err(Refusal::Permanent(format!(
                "provider {} has no initiator_name and security_credential: it cannot pay out",
                self.name
            )));
        }
        Ok(json!({
            "OriginatorConversationID": r.transaction_id,
            "InitiatorName": self.settings.initiator_name,
            "SecurityCredential": self.security_credential,
            "CommandID": self.settings.b2c_command,
            "Amount": shillings,
            "PartyA": r.channel_number,
            "PartyB": msisdn(&r.destination),
            "Remarks": clip(if r.narration.is_empty() { "Payout" } else { &r.narration }, 100),
            "QueueTimeOutURL": format!("{}/b2c-timeout", self.hooks),
            "ResultURL": format!("{}/b2c-result", self.hooks),
            "Occassion": clip(&r.account, 100),
        }))
    }
}

impl PaymentTransport for Mpesa {
    async fn request(&self, r: &PaymentRequest) -> Result<String, Refusal> {
        let shillings = whole_shillings(&r.currency, r.amount).map_err(Refusal::Permanent)?;
        match r.kind {
            RequestKind::Collect => {
                let body = self.stk_push(r, shillings, time::OffsetDateTime::now_utc())?;
                let answer = self.call("/mpesa/stkpush/v1/processrequest", &body).await?;
                reference(&answer, "CheckoutRequestID")
            }
            RequestKind::Pay => {
                let body = self.b2c(r, shillings)?;
                let answer = self.call("/mpesa/b2c/v3/paymentrequest", &body).await?;
                reference(&answer, "ConversationID")
            }
        }
    }
}

/// M-Pesa moves whole Kenya shillings: the amount in them, or why not.
pub fn whole_shillings(currency: &str, minor: i64) -> Result<i64, String> {
    if currency != "KES" {
        return Err(format!("M-Pesa moves Kenya shillings (KES), not {currency}"));
    }
    if minor % 100 != 0 {
        return Err("M-Pesa moves whole shillings: the amount has cents".into());
    }
    Ok(minor / 100)
}

/// `+254711000001` as Daraja writes it: `254711000001`.
fn msisdn(number: &str) -> String {
    number.trim().trim_start_matches('+').to_string()
}

fn clip(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// The account reference an STK push shows the customer: the app's, else the end of our id.
fn account_reference(r: &PaymentRequest) -> String {
    if !r.account.is_empty() {
        return clip(&r.account, 12);
    }
    let id: Vec<char> = r.transaction_id.chars().collect();
    id[id.len().saturating_sub(12)..].iter().collect()
}

/// Daraja's timestamp: Nairobi time (EAT, UTC+3, no daylight saving), `YYYYMMDDHHmmss`.
pub fn nairobi_timestamp(at: time::OffsetDateTime) -> String {
    let eat = time::UtcOffset::from_hms(3, 0, 0).unwrap_or(time::UtcOffset::UTC);
    let t = at.to_offset(eat);
    format!("{:04}{:02}{:02}{:02}{:02}{:02}", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second())
}

/// What an API answer means for the request: its JSON when accepted.
fn outcome(status: u16, body: &[u8]) -> Result<Value, Refusal> {
    let text = String::from_utf8_lossy(body);
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let said = |v: &Option<Value>| {
        v.as_ref()
            .and_then(|v| v.get("errorMessage").or_else(|| v.get("ResponseDescription")))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| text.to_string())
    };
    match status {
        200 => {}
        401 => return Err(Refusal::Transient(format!("Daraja refused our access token: {}", said(&parsed)))),
        429 => return Err(Refusal::Throttled(format!("Daraja: too many requests: {}", said(&parsed)))),
        400..=499 => return Err(Refusal::Permanent(format!("Daraja answered {status}: {}", said(&parsed)))),
        _ => return Err(Refusal::Transient(format!("Daraja answered {status}: {}", said(&parsed)))),
    }
    let Some(answer) = parsed else {
        return Err(Refusal::Transient(format!("Daraja's answer does not parse: {text}")));
    };
    match answer.get("ResponseCode").and_then(Value::as_str) {
        Some("0") => Ok(answer),
        _ => Err(Refusal::Permanent(format!("Daraja did not take the request: {}", said(&Some(answer.clone()))))),
    }
}

fn reference(answer: &Value, field: &str) -> Result<String, Refusal> {
    match answer.get(field).and_then(Value::as_str) {
        Some(id) if !id.is_empty() => Ok(id.to_string()),
        _ => Err(Refusal::Transient(format!("Daraja accepted the request but named no {field}: {answer}"))),
    }
}

/// A payment's end as a callback reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Daraja's reference (`CheckoutRequestID`, `ConversationID`).
    pub reference: String,
    /// Ours, when the callback carries it (B2C's `OriginatorConversationID`).
    pub ours: Option<String>,
    pub status: PaymentStatus,
    /// `ResultCode: ResultDesc`, and M-Pesa's receipt number when there is one.
    pub description: String,
}

/// The Elarian status for a Daraja `ResultCode`.
pub fn result_status(code: i64) -> PaymentStatus {
    match code {
        0 => PaymentStatus::Success,
        // The customer cancelled the prompt.
        1032 => PaymentStatus::Rejected,
        // The customer could not be reached, or did not answer in time.
        1037 | 1019 | 1036 => PaymentStatus::Expired,
        // The customer's balance is short.
        1 => PaymentStatus::InsufficientFunds,
        _ => PaymentStatus::Failed,
    }
}

fn code(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn string(v: &Value, field: &str) -> Result<String, String> {
    match v.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(format!("{field} is missing")),
    }
}

/// A named item of a callback's metadata list (`[{"Name": …, "Value": …}]`).
fn item(list: Option<&Value>, name: &str) -> Option<String> {
    list?.as_array()?.iter().find(|i| i.get("Name").and_then(Value::as_str) == Some(name)).and_then(|i| {
        match i.get("Value")? {
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    })
}

/// The STK push result: `{"Body": {"stkCallback": {…}}}`.
pub fn stk_result(body: &[u8]) -> Result<Outcome, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let cb = v.pointer("/Body/stkCallback").ok_or("Body.stkCallback is missing")?;
    let result = cb.get("ResultCode").and_then(code).ok_or("ResultCode is missing")?;
    let desc = cb.get("ResultDesc").and_then(Value::as_str).unwrap_or_default();
    let receipt = item(cb.pointer("/CallbackMetadata/Item"), "MpesaReceiptNumber");
    Ok(Outcome {
        reference: string(cb, "CheckoutRequestID")?,
        ours: None,
        status: result_status(result),
        description: match receipt {
            Some(r) => format!("{result}: {desc} (receipt {r})"),
            None => format!("{result}: {desc}"),
        },
    })
}

/// The B2C result or queue timeout: `{"Result": {…}}`.
pub fn b2c_result(body: &[u8], timeout: bool) -> Result<Outcome, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let r = v.get("Result").ok_or("Result is missing")?;
    let result = r.get("ResultCode").and_then(code).ok_or("ResultCode is missing")?;
    let desc = r.get("ResultDesc").and_then(Value::as_str).unwrap_or_default();
    let receipt = r.get("TransactionID").and_then(Value::as_str).filter(|t| !t.is_empty());
    // A queue timeout: the request waited too long at Safaricom and was not carried out.
    let status = if timeout { PaymentStatus::Expired } else { result_status(result) };
    Ok(Outcome {
        reference: string(r, "ConversationID")?,
        ours: r.get("OriginatorConversationID").and_then(Value::as_str).map(str::to_string),
        status,
        description: match receipt {
            Some(t) => format!("{result}: {desc} (receipt {t})"),
            None => format!("{result}: {desc}"),
        },
    })
}

/// A customer paying our short code from their phone (C2B validation or confirmation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct C2bPayment {
    /// M-Pesa's receipt number: the provider's transaction id.
    pub trans_id: String,
    pub short_code: String,
    /// `+254…`.
    pub customer_number: String,
    /// Minor units of KES.
    pub amount: i64,
    /// What the customer typed as the account number.
    pub bill_ref: String,
}

pub fn c2b_payment(body: &[u8]) -> Result<C2bPayment, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let amount = string(&v, "TransAmount")?;
    let shillings: f64 = amount.parse().map_err(|_| format!("TransAmount {amount:?} is not a number"))?;
    if !shillings.is_finite() || shillings <= 0.0 || shillings > 1e12 {
        return Err(format!("TransAmount {amount:?} is out of range"));
    }
    let msisdn = string(&v, "MSISDN")?;
    Ok(C2bPayment {
        trans_id: string(&v, "TransID")?,
        short_code: string(&v, "BusinessShortCode")?,
        customer_number: if msisdn.starts_with('+') { msisdn } else { format!("+{msisdn}") },
        amount: (shillings * 100.0).round() as i64,
        bill_ref: v.get("BillRefNumber").and_then(Value::as_str).unwrap_or_default().to_string(),
    })
}

/// What Daraja expects back from a callback: `{"ResultCode": …, "ResultDesc": …}` (a C2B
/// validation is refused with a code such as `C2B00012`, invalid account number).
pub fn callback_answer(code: &str, description: &str) -> Value {
    json!({ "ResultCode": code, "ResultDesc": description })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(kind: RequestKind) -> PaymentRequest {
        PaymentRequest {
            transaction_id: "txn_01HX0000000000000000000000".into(),
            provider: "mpesa".into(),
            kind,
            channel_number: "174379".into(),
            destination: "+254708374149".into(),
            account: String::new(),
            currency: "KES".into(),
            amount: 10_000,
            narration: "Order 42, thank you".into(),
            attempts: 0,
            expires_at: 0,
        }
    }

    fn settings() -> Settings {
        Settings {
            consumer_key: "key".into(),
            consumer_secret: crate::config::providers::Secret::new("secret"),
            passkey: crate::config::providers::Secret::new("passkey"),
            initiator_name: "apiop".into(),
            security_credential: crate::config::providers::Secret::new("cred"),
            public_url: "https://hodi.example/".into(),
            ..Settings::default()
        }
    }

    #[test]
    fn stk_push_carries_the_documented_fields() {
        let m = Mpesa::new("mpesa", &settings(), Some("tok")).expect("settings");
        let at = time::OffsetDateTime::from_unix_timestamp(1796578200).expect("a time");
        let body = m.stk_push(&request(RequestKind::Collect), 100, at).expect("a body");
        assert_eq!(body["Timestamp"], "20261206203000", "Nairobi time, UTC+3");
        let password = base64::engine::general_purpose::STANDARD.encode("174379passkey20261206203000");
        assert_eq!(body["Password"], password);
        assert_eq!(body["PartyA"], "254708374149");
        assert_eq!(body["PhoneNumber"], "254708374149");
        assert_eq!(body["PartyB"], "174379");
        assert_eq!(body["Amount"], 100);
        assert_eq!(body["CallBackURL"], "https://hodi.example/hooks/mpesa/tok/stk");
        assert_eq!(body["AccountReference"].as_str().map(str::len), Some(12));
        assert_eq!(body["TransactionDesc"], "Order 42, tha");
        let b2c = m.b2c(&request(RequestKind::Pay), 100).expect("a body");
        assert_eq!(b2c["OriginatorConversationID"], "txn_01HX0000000000000000000000");
        assert_eq!(b2c["ResultURL"], "https://hodi.example/hooks/mpesa/tok/b2c-result");
        assert_eq!(b2c["PartyB"], "254708374149");
        let bare = Mpesa::new("mpesa", &Settings { initiator_name: String::new(), ..settings() }, Some("t"))
            .expect("settings");
        assert!(matches!(bare.b2c(&request(RequestKind::Pay), 1), Err(Refusal::Permanent(_))));
        assert!(Mpesa::new("mpesa", &settings(), None).is_err(), "no webhook token, no results");
    }

    #[test]
    fn amounts_are_whole_kenya_shillings() {
        assert_eq!(whole_shillings("KES", 10_000), Ok(100));
        assert!(whole_shillings("KES", 10_050).is_err());
        assert!(whole_shillings("UGX", 100).is_err());
    }

    #[test]
    fn answers_decide_accepted_refused_or_try_again() {
        let ok = br#"{"MerchantRequestID":"29115-34620561-1","CheckoutRequestID":"ws_CO_191220191020363925","ResponseCode":"0","ResponseDescription":"Success. Request accepted for processing","CustomerMessage":"Success. Request accepted for processing"}"#;
        assert_eq!(
            outcome(200, ok).and_then(|a| reference(&a, "CheckoutRequestID")),
            Ok("ws_CO_191220191020363925".into())
        );
        let bad = br#"{"requestId":"1","errorCode":"400.002.02","errorMessage":"Bad Request - Invalid PhoneNumber"}"#;
        assert!(matches!(outcome(400, bad), Err(Refusal::Permanent(why)) if why.contains("Invalid PhoneNumber")));
        assert!(matches!(outcome(401, b"{}"), Err(Refusal::Transient(_))));
        assert!(matches!(outcome(429, b""), Err(Refusal::Throttled(_))));
        assert!(matches!(outcome(503, b"down"), Err(Refusal::Transient(_))));
        assert!(matches!(
            outcome(200, br#"{"ResponseCode":"1","ResponseDescription":"no"}"#),
            Err(Refusal::Permanent(_))
        ));
        assert!(matches!(outcome(200, b"<html>"), Err(Refusal::Transient(_))));
    }

    #[test]
    fn callbacks_parse_into_statuses_and_refuse_what_is_missing() {
        let paid = br#"{"Body":{"stkCallback":{"MerchantRequestID":"1","CheckoutRequestID":"ws_CO_1","ResultCode":0,"ResultDesc":"The service request is processed successfully.","CallbackMetadata":{"Item":[{"Name":"Amount","Value":1.00},{"Name":"MpesaReceiptNumber","Value":"NLJ7RT61SV"},{"Name":"PhoneNumber","Value":254708374149}]}}}}"#;
        let o = stk_result(paid).expect("parses");
        assert_eq!((o.reference.as_str(), o.status), ("ws_CO_1", PaymentStatus::Success));
        assert!(o.description.contains("NLJ7RT61SV"));
        let cancelled = br#"{"Body":{"stkCallback":{"MerchantRequestID":"1","CheckoutRequestID":"ws_CO_2","ResultCode":1032,"ResultDesc":"Request cancelled by user"}}}"#;
        assert_eq!(stk_result(cancelled).expect("parses").status, PaymentStatus::Rejected);
        assert!(stk_result(br#"{"Body":{}}"#).is_err());
        assert!(stk_result(b"nope").is_err());
        let b2c = br#"{"Result":{"ResultType":0,"ResultCode":0,"ResultDesc":"The service request is processed successfully.","OriginatorConversationID":"txn_1","ConversationID":"AG_1","TransactionID":"NLJ41HAY6Q"}}"#;
        let o = b2c_result(b2c, false).expect("parses");
        assert_eq!((o.ours.as_deref(), o.status), (Some("txn_1"), PaymentStatus::Success));
        assert_eq!(b2c_result(b2c, true).expect("parses").status, PaymentStatus::Expired);
        let c2b = br#"{"TransactionType":"Pay Bill","TransID":"RKTQDM7W6S","TransTime":"20191122063845","TransAmount":"10.50","BusinessShortCode":"600638","BillRefNumber":"invoice008","MSISDN":"254708374149","FirstName":"John"}"#;
        let p = c2b_payment(c2b).expect("parses");
        assert_eq!((p.amount, p.customer_number.as_str(), p.short_code.as_str()), (1050, "+254708374149", "600638"));
        assert!(c2b_payment(br#"{"TransID":"x","TransAmount":"-1","BusinessShortCode":"1","MSISDN":"2"}"#).is_err());
        assert!(c2b_payment(br#"{"TransAmount":"1","BusinessShortCode":"1","MSISDN":"2"}"#).is_err());
    }
}
