//! M-Pesa's (Daraja's) callbacks: `stk` (an STK push's result), `b2c-result` and `b2c-timeout`
//! (a payout's result, or its request timing out in Safaricom's queue), `c2b-validation` (may a
//! customer pay our short code?) and `c2b-confirmation` (a customer paid it). Daraja signs
//! nothing, so the token in the URL is the only proof of origin: keep `public_url` on HTTPS and
//! the token long.
//!
//! Every answer is Daraja's `{"ResultCode": …, "ResultDesc": …}`. A result is applied (the ledger
//! moved, the app's `payment_status` queued) before the 200; a reference we do not know is 404,
//! a store failure 500.

use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::{error, warn};

use crate::channel::mpesa;
use crate::context::Hodi;
use crate::payment::providers::{self, Applied};
use crate::payment::simulator::Recorded;

fn answer(status: StatusCode, code: &str, description: &str) -> Response {
    let body = mpesa::callback_answer(code, description).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn malformed(provider: &str, event: &str, why: String) -> Response {
    warn!(provider, event, why, "a malformed M-Pesa callback: refused");
    answer(StatusCode::BAD_REQUEST, "1", &why)
}

fn failed(provider: &str, event: &str, e: anyhow::Error) -> Response {
    warn!(provider, event, error = %e, "storing an M-Pesa callback");
    answer(StatusCode::INTERNAL_SERVER_ERROR, "1", "try again")
}

pub async fn hook(hodi: &Arc<Hodi>, provider: &str, event: &str, body: &[u8]) -> Response {
    let outcome = match event {
        "stk" => mpesa::stk_result(body),
        "b2c-result" => mpesa::b2c_result(body, false),
        "b2c-timeout" => mpesa::b2c_result(body, true),
        "c2b-validation" => return validation(hodi, provider, body).await,
        "c2b-confirmation" => return confirmation(hodi, provider, body).await,
        _ => {
            return answer(
                StatusCode::NOT_FOUND,
                "1",
                "M-Pesa calls back on stk, b2c-result, b2c-timeout, c2b-validation or c2b-confirmation",
            )
        }
    };
    let o = match outcome {
        Ok(o) => o,
        Err(why) => return malformed(provider, event, why),
    };
    match providers::result(hodi, provider, &o.reference, o.ours.as_deref(), o.status, &o.description).await {
        Ok(Applied::Finished(_)) | Ok(Applied::AlreadyEnded) => answer(StatusCode::OK, "0", "Accepted"),
        Ok(Applied::Unknown) => {
            warn!(provider, event, reference = o.reference, "an M-Pesa result for no payment of ours");
            answer(StatusCode::NOT_FOUND, "1", "no such payment")
        }
        Err(e) => failed(provider, event, e),
    }
}

async fn validation(hodi: &Arc<Hodi>, provider: &str, body: &[u8]) -> Response {
    let p = match mpesa::c2b_payment(body) {
        Ok(p) => p,
        Err(why) => return malformed(provider, "c2b-validation", why),
    };
    match providers::may_receive(hodi, provider, &p.short_code, "KES").await {
        Ok(Ok(())) => answer(StatusCode::OK, "0", "Accepted"),
        Ok(Err(why)) => {
            warn!(provider, short_code = p.short_code, why, "a C2B payment refused at validation");
            // C2B00016: "Other error" — M-Pesa then refuses the customer's payment.
            answer(StatusCode::OK, "C2B00016", "Rejected")
        }
        Err(e) => failed(provider, "c2b-validation", e),
    }
}

async fn confirmation(hodi: &Arc<Hodi>, provider: &str, body: &[u8]) -> Response {
    let p = match mpesa::c2b_payment(body) {
        Ok(p) => p,
        Err(why) => return malformed(provider, "c2b-confirmation", why),
    };
    let recorded =
        providers::received(hodi, provider, &p.short_code, &p.customer_number, &p.trans_id, "KES", p.amount).await;
    match recorded {
        Ok(Recorded::Stored(_)) | Ok(Recorded::Duplicate(_)) => answer(StatusCode::OK, "0", "Success"),
        Ok(Recorded::Refused(why)) => {
            // The customer's money has moved at M-Pesa and cannot be refused now: say so loudly,
            // and let Daraja try again once the operator has fixed the cause.
            error!(
                provider,
                trans_id = p.trans_id,
                short_code = p.short_code,
                why,
                "a confirmed C2B payment could not be recorded; it is not in the ledger"
            );
            answer(StatusCode::INTERNAL_SERVER_ERROR, "1", &why)
        }
        Err(e) => failed(provider, "c2b-confirmation", e),
    }
}
