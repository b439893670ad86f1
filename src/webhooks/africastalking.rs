//! Africa's Talking's callbacks: `delivery` (delivery reports), `sms` (incoming messages),
//! `airtime` (an airtime payout's status) and `ussd` (each step of a USSD session, answered with
//! `CON …` or `END …` in the same request, from the app's menu, as for a simulator's USSD session).
//!
//! Payloads are parsed by [`crate::channel::africastalking`]; reports go to messaging like any
//! provider's, and are stored before the answer.

use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::warn;

use crate::channel::africastalking as at;
use crate::context::Hodi;
use crate::payment::providers::Applied;
use crate::wire::{
    inbound_message_body, outbound_message_body, InboundMessageBody, MessagingChannel, MessagingChannelNumber,
    ReceiveMessageSimulatorCommand, UssdInputMessageBody, UssdSessionStatus,
};

pub async fn hook(hodi: &Arc<Hodi>, provider: &str, event: &str, body: &[u8]) -> Response {
    let parsed = match event {
        "delivery" => at::delivery_report(provider, body),
        "sms" => at::incoming_message(provider, body).map(Some),
        "ussd" => return ussd(hodi, provider, body).await,
        "airtime" => return airtime(hodi, provider, body).await,
        _ => {
            return (StatusCode::NOT_FOUND, "Africa's Talking calls back on delivery, sms, ussd or airtime")
                .into_response()
        }
    };
    super::store(hodi, provider, event, parsed.map(|e| e.into_iter().collect()), (StatusCode::OK, "ok").into_response())
        .await
}

/// An airtime status callback: the payout's result.
async fn airtime(hodi: &Arc<Hodi>, provider: &str, body: &[u8]) -> Response {
    let (request_id, status, description) = match at::airtime_status(body) {
        Ok(s) => s,
        Err(why) => {
            warn!(provider, why, "a malformed airtime status: refused");
            return (StatusCode::BAD_REQUEST, why).into_response();
        }
    };
    match crate::payment::providers::result(hodi, provider, &request_id, None, status, &description).await {
        Ok(Applied::Unknown) => {
            warn!(provider, request_id, "an airtime status for no payment of ours");
            (StatusCode::NOT_FOUND, "no such request").into_response()
        }
        Ok(_) => (StatusCode::OK, "ok").into_response(),
        Err(e) => {
            warn!(provider, error = %e, "storing an airtime status");
            (StatusCode::INTERNAL_SERVER_ERROR, "try again").into_response()
        }
    }
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

async fn ussd(hodi: &Arc<Hodi>, provider: &str, body: &[u8]) -> Response {
    let step = match at::ussd_step(body) {
        Ok(s) => s,
        Err(why) => {
            warn!(provider, why, "a malformed USSD step: refused");
            return (StatusCode::BAD_REQUEST, why).into_response();
        }
    };
    let owner = match hodi.store.provider_number_owner(provider, "ussd", &step.service_code).await {
        Ok(owner) => owner,
        Err(e) => {
            warn!(provider, error = %e, "finding who owns a USSD code");
            return text(at::ussd_answer("The service is not available right now.", true));
        }
    };
    let Some((org_id, app_id)) = owner else {
        warn!(provider, code = step.service_code, "a USSD step for a code no org has bound to this provider");
        return text(at::ussd_answer("This code is not in service.", true));
    };
    let cmd = ReceiveMessageSimulatorCommand {
        customer_number: step.phone_number.clone(),
        channel_number: Some(MessagingChannelNumber {
            channel: MessagingChannel::Ussd as i32,
            number: step.service_code.clone(),
        }),
        parts: vec![InboundMessageBody {
            entry: Some(inbound_message_body::Entry::Ussd(UssdInputMessageBody {
                status: UssdSessionStatus::Active as i32,
                text: Some(step.input.clone()),
            })),
        }],
        session_id: Some(step.session_id.clone()),
        ..Default::default()
    };
    let reply = match crate::messaging::inbound::receive(hodi, &org_id, &app_id, cmd).await {
        Ok(reply) => reply,
        Err(e) => {
            warn!(provider, session = step.session_id, error = %e, "a USSD step failed");
            return text(at::ussd_answer("The service is not available right now.", true));
        }
    };
    let menu = reply.message.and_then(|m| m.body).and_then(|b| b.entry);
    match menu {
        Some(outbound_message_body::Entry::Ussd(menu)) => text(at::ussd_answer(&menu.text, menu.is_terminal)),
        Some(outbound_message_body::Entry::Text(t)) => text(at::ussd_answer(&t, true)),
        _ => text(at::ussd_answer(
            if reply.status { "Thank you." } else { "The service is not available right now." },
            true,
        )),
    }
}
