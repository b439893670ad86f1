//! What a queued message says, as a provider reads it: the stored `OutboundMessage` decoded once,
//! and the parts of its body every provider needs the same way (a text, a template's parameters in
//! order, a media kind's name).

use std::collections::HashMap;

use prost::Message;

use super::worker::Refusal;
use crate::store::providers::QueuedSend;
use crate::wire::{outbound_message_body::Entry, MediaType, OutboundMessage};

/// The body of a queued message.
pub fn outbound(message: &QueuedSend) -> Result<Entry, Refusal> {
    let outbound = OutboundMessage::decode(message.message.as_slice())
        .map_err(|e| Refusal::Permanent(format!("stored message does not decode: {e}")))?;
    outbound.body.and_then(|b| b.entry).ok_or_else(|| Refusal::Permanent("the message has no body".into()))
}

/// The text a text-only channel sends: a text, or a link as its text.
pub fn text(entry: Entry, provider: &str) -> Result<String, Refusal> {
    match entry {
        Entry::Text(t) | Entry::Url(t) => Ok(t),
        other => Err(Refusal::Permanent(format!("{provider} carries text (or a link), not {}", kind(&other)))),
    }
}

/// What kind of body it is, for refusals.
pub fn kind(entry: &Entry) -> &'static str {
    match entry {
        Entry::Text(_) => "text",
        Entry::Media(_) => "media",
        Entry::Location(_) => "a location",
        Entry::Email(_) => "email",
        Entry::Template(_) => "a template",
        Entry::Url(_) => "a link",
        Entry::Voice(_) => "voice actions",
        Entry::Ussd(_) => "a USSD menu",
    }
}

/// A media kind, as the wire numbers it.
pub fn media_type(media: i32) -> MediaType {
    MediaType::try_from(media).unwrap_or(MediaType::Unspecified)
}

/// A template's parameters in their order: numbered ones (`"1"`, `"2"`, … — positional
/// placeholders) by number, named ones by name.
pub fn template_params(params: &HashMap<String, String>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    out.sort_by(|(a, _), (b, _)| match (a.parse::<u32>(), b.parse::<u32>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    });
    out
}

/// Whether a template's parameters are positional (all numbered).
pub fn positional(params: &[(String, String)]) -> bool {
    params.iter().all(|(k, _)| k.parse::<u32>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_parameters_come_in_placeholder_order() {
        let params: HashMap<String, String> =
            [("10", "j"), ("2", "b"), ("1", "a")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let ordered = template_params(&params);
        assert_eq!(ordered.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["1", "2", "10"]);
        assert!(positional(&ordered));
        let named: HashMap<String, String> =
            [("name", "Ada"), ("amount", "5")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let ordered = template_params(&named);
        assert_eq!(ordered[0].0, "amount");
        assert!(!positional(&ordered));
    }

    #[test]
    fn links_are_text_and_other_bodies_are_refused_by_name() {
        assert_eq!(text(Entry::Url("https://x.example".into()), "SMS"), Ok("https://x.example".into()));
        let refused = text(Entry::Template(Default::default()), "SMS");
        assert!(matches!(refused, Err(Refusal::Permanent(why)) if why.contains("not a template")));
    }
}
