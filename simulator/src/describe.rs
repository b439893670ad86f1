//! What a person holding the phone would see or hear, as one line of text.

use hodi_sdk::wire::{self, outbound_message_body::Entry as Body, voice_call_action::Entry as Action};
use hodi_sdk::SimulatorEvent;

/// An outbound message's body.
pub fn message(m: &wire::OutboundMessage) -> String {
    match m.body.as_ref().and_then(|b| b.entry.as_ref()) {
        Some(Body::Text(t)) => t.clone(),
        Some(Body::Ussd(u)) => format!("{}{}", u.text, if u.is_terminal { "  [end]" } else { "" }),
        Some(Body::Voice(v)) => actions(&v.actions),
        Some(Body::Email(e)) => format!("{}: {}", e.subject, e.body_plain),
        Some(Body::Media(m)) => format!("[media] {}", m.url),
        Some(Body::Location(l)) => {
            format!("[location] {} {},{}", l.label.as_deref().unwrap_or(""), l.latitude, l.longitude)
        }
        Some(Body::Template(t)) => format!("[template] {}", t.id),
        Some(Body::Url(u)) => u.clone(),
        None => "(empty)".into(),
    }
}

/// Voice actions, in order.
pub fn actions(actions: &[wire::VoiceCallAction]) -> String {
    let parts: Vec<String> = actions
        .iter()
        .map(|a| match a.entry.as_ref() {
            Some(Action::Say(s)) => format!("say \"{}\"", s.text),
            Some(Action::Play(p)) => format!("play {}", p.url),
            Some(Action::GetDigits(g)) => {
                let prompt = match &g.prompt {
                    Some(wire::get_digits_call_action::Prompt::Say(s)) => format!(" \"{}\"", s.text),
                    Some(wire::get_digits_call_action::Prompt::Play(p)) => format!(" {}", p.url),
                    None => String::new(),
                };
                format!("getDigits{prompt} (up to {} keys)", g.num_digits.unwrap_or(0))
            }
            Some(Action::Dial(d)) => {
                let to: Vec<&str> = d.customer_numbers.iter().map(|n| n.number.as_str()).collect();
                format!("dial {}", to.join(", "))
            }
            Some(Action::RecordSession(_)) => "recordSession".into(),
            Some(Action::GetRecording(_)) => "getRecording".into(),
            Some(Action::Enqueue(e)) => format!("enqueue {}", e.queue_name.as_deref().unwrap_or("default")),
            Some(Action::Dequeue(_)) => "dequeue".into(),
            Some(Action::Reject(_)) => "reject".into(),
            Some(Action::Redirect(r)) => format!("redirect {}", r.url),
            None => "(unknown action)".into(),
        })
        .collect();
    if parts.is_empty() {
        "(no actions)".into()
    } else {
        parts.join(" → ")
    }
}

fn cash(c: Option<&wire::Cash>) -> String {
    c.map(|c| format!("{} {}", c.currency_code, c.amount)).unwrap_or_else(|| "?".into())
}

/// A simulator event as it would show on the phone.
pub fn event(e: &SimulatorEvent) -> String {
    match e {
        SimulatorEvent::SendMessage(m) => {
            let from = m.channel_number.as_ref().map(|c| c.number.as_str()).unwrap_or("?");
            let body = m.message.as_ref().map(message).unwrap_or_default();
            format!("message from {from}: {body}")
        }
        SimulatorEvent::MakeVoiceCall(c) => {
            let from = c.channel_number.as_ref().map(|n| n.number.as_str()).unwrap_or("?");
            format!("incoming call from {from} (type `answer`)")
        }
        SimulatorEvent::CheckoutPayment(c) => {
            format!("checkout request for {} (type `confirm` or `decline`)", cash(c.value.as_ref()))
        }
        SimulatorEvent::SendCustomerPayment(p) => format!("received {}", cash(p.value.as_ref())),
        SimulatorEvent::SendChannelPayment(p) => format!("channel payment of {}", cash(p.value.as_ref())),
    }
}
