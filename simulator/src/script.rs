//! The phone's command language, shared by the interactive CLI and `--script` files.
//!
//! One step per line; `#` starts a comment. Steps act (`sms`, `dial`, `answer`…) or check
//! (`expect …`); a failed check fails the script. See [`HELP`].

use std::time::Duration;

use hodi_sdk::model::channel;

use crate::{describe, Error, Phone, Result};

pub const HELP: &str = concat!(
    "  sms <to> <text>              text the app's SMS number\n",
    "  whatsapp|telegram|messenger|email <to> <text>\n",
    "  dial <code>                  dial a USSD code, e.g. dial *384#\n",
    "  ussd <input>                 answer the open USSD screen\n",
    "  call <to>                    call the app's voice number\n",
    "  answer                       answer the call the app placed\n",
    "  press <digits>               press keys on the call\n",
    "  hangup                       end the call\n",
    "  pay <paybill> <currency> <amount>\n",
    "  confirm | decline            the checkout the app asked for\n",
    "  expect message|call|checkout [text]   wait for it (and check it contains text)\n",
    "  expect screen <text>         the last USSD screen or voice actions contain text\n",
    "  wait <seconds>\n",
    "  help | quit",
);

/// What a check waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    Message,
    Call,
    Checkout,
    /// The last USSD screen or voice actions.
    Screen,
}

/// One line of a script.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Sms { to: String, text: String },
    Chat { channel: String, to: String, text: String },
    Dial { code: String },
    Ussd { input: String },
    Call { to: String },
    Answer,
    Press { digits: String },
    HangUp,
    Pay { to: String, currency: String, amount: f64 },
    Confirm,
    Decline,
    Expect { what: Expect, contains: Option<String> },
    Wait(Duration),
    Help,
    Quit,
}

fn split(rest: &str) -> (&str, &str) {
    let rest = rest.trim();
    rest.split_once(char::is_whitespace).map_or((rest, ""), |(a, b)| (a, b.trim()))
}

fn need<'a>(value: &'a str, what: &str) -> Result<&'a str> {
    if value.is_empty() {
        Err(Error::Step(format!("missing {what}")))
    } else {
        Ok(value)
    }
}

impl Step {
    /// Parses one line; None for blank lines and comments.
    pub fn parse(line: &str) -> Result<Option<Step>> {
        // `#` starts a comment at the line's start or after a space; inside a USSD code (`*384#`)
        // it does not.
        let cut = line
            .char_indices()
            .find(|&(i, c)| c == '#' && line[..i].chars().last().is_none_or(char::is_whitespace))
            .map_or(line.len(), |(i, _)| i);
        let line = &line[..cut];
        let (word, rest) = split(line);
        if word.is_empty() {
            return Ok(None);
        }
        let step = match word {
            "sms" => {
                let (to, text) = split(rest);
                Step::Sms { to: need(to, "the SMS number")?.into(), text: need(text, "the text")?.into() }
            }
            "whatsapp" | "telegram" | "messenger" | "email" => {
                let (to, text) = split(rest);
                Step::Chat {
                    channel: word.into(),
                    to: need(to, "the channel number")?.into(),
                    text: need(text, "the text")?.into(),
                }
            }
            "dial" => Step::Dial { code: need(rest, "the USSD code")?.into() },
            "ussd" | "reply" => Step::Ussd { input: rest.into() },
            "call" => Step::Call { to: need(rest, "the voice number")?.into() },
            "answer" => Step::Answer,
            "press" => Step::Press { digits: need(rest, "the digits")?.into() },
            "hangup" | "hang-up" => Step::HangUp,
            "pay" => {
                let parts: Vec<&str> = rest.split_whitespace().collect();
                let [to, currency, amount] = parts[..] else {
                    return Err(Error::Step("usage: pay <paybill> <currency> <amount>".into()));
                };
                let amount = amount.parse().map_err(|_| Error::Step(format!("{amount:?} is not an amount")))?;
                Step::Pay { to: to.into(), currency: currency.into(), amount }
            }
            "confirm" => Step::Confirm,
            "decline" => Step::Decline,
            "expect" => {
                let (what, text) = split(rest);
                let what = match what {
                    "message" | "sms" => Expect::Message,
                    "call" => Expect::Call,
                    "checkout" => Expect::Checkout,
                    "screen" | "ussd" | "voice" => Expect::Screen,
                    other => {
                        return Err(Error::Step(format!("expect what? {other:?} (message, call, checkout, screen)")))
                    }
                };
                let contains = (!text.is_empty()).then(|| text.trim_matches('"').to_string());
                Step::Expect { what, contains }
            }
            "wait" => {
                let secs: f64 = need(rest, "seconds")?
                    .trim_end_matches('s')
                    .parse()
                    .map_err(|_| Error::Step(format!("{rest:?} is not a number of seconds")))?;
                Step::Wait(Duration::from_secs_f64(secs.clamp(0.0, 3600.0)))
            }
            "help" | "?" => Step::Help,
            "quit" | "exit" => Step::Quit,
            other => return Err(Error::Step(format!("unknown step {other:?}; type help"))),
        };
        Ok(Some(step))
    }
}

/// Runs steps on one phone, remembering the last screen for `expect screen`.
pub struct Runner<'a> {
    pub phone: &'a Phone,
    /// How long an `expect` waits.
    pub timeout: Duration,
    last_screen: String,
}

impl<'a> Runner<'a> {
    pub fn new(phone: &'a Phone, timeout: Duration) -> Runner<'a> {
        Runner { phone, timeout, last_screen: String::new() }
    }

    fn screen(&mut self, text: String) -> Vec<String> {
        self.last_screen = text.clone();
        vec![format!("< {text}")]
    }

    fn check(found: &str, contains: &Option<String>) -> Result<()> {
        match contains {
            Some(c) if !found.contains(c.as_str()) => Err(Error::Step(format!("expected {c:?}, got {found:?}"))),
            _ => Ok(()),
        }
    }

    /// Runs one step; returns the lines to show.
    pub async fn run(&mut self, step: &Step) -> Result<Vec<String>> {
        let phone = self.phone;
        Ok(match step {
            Step::Sms { to, text } => {
                phone.send_sms(to, text).await?;
                vec![format!("> sms to {to}: {text}")]
            }
            Step::Chat { channel: kind, to, text } => {
                let number = match kind.as_str() {
                    "whatsapp" => channel::whatsapp(to.as_str()),
                    "telegram" => channel::telegram(to.as_str()),
                    "messenger" => channel::messenger(to.as_str()),
                    _ => channel::email(to.as_str()),
                };
                phone.send_text(number, text).await?;
                vec![format!("> {kind} to {to}: {text}")]
            }
            Step::Dial { code } => {
                let s = phone.dial_ussd(code).await?;
                self.screen(describe_screen(&s))
            }
            Step::Ussd { input } => {
                let s = phone.ussd_reply(input).await?;
                self.screen(describe_screen(&s))
            }
            Step::Call { to } => {
                let actions = phone.call(to).await?;
                self.screen(describe::actions(&actions))
            }
            Step::Answer => {
                let actions = phone.answer().await?;
                self.screen(describe::actions(&actions))
            }
            Step::Press { digits } => {
                let actions = phone.press(digits).await?;
                self.screen(describe::actions(&actions))
            }
            Step::HangUp => {
                phone.hang_up().await?;
                vec!["> hung up".into()]
            }
            Step::Pay { to, currency, amount } => {
                let id = phone.pay(to, currency, *amount).await?;
                vec![format!("> paid {currency} {amount} to {to} ({id})")]
            }
            Step::Confirm => {
                phone.confirm_checkout().await?;
                vec!["> checkout confirmed".into()]
            }
            Step::Decline => {
                phone.decline_checkout().await?;
                vec!["> checkout declined".into()]
            }
            Step::Expect { what: Expect::Screen, contains } => {
                Self::check(&self.last_screen, contains)?;
                vec![format!("✓ screen: {}", self.last_screen)]
            }
            Step::Expect { what, contains } => {
                let found = match what {
                    Expect::Message => phone.expect_message(self.timeout).await?.text(),
                    Expect::Call => format!("call on {}", phone.expect_call(self.timeout).await?.channel),
                    _ => {
                        let c = phone.expect_checkout(self.timeout).await?;
                        format!(
                            "checkout {}",
                            c.value.map(|v| format!("{} {}", v.currency_code, v.amount)).unwrap_or_default()
                        )
                    }
                };
                Self::check(&found, contains)?;
                vec![format!("✓ {found}")]
            }
            Step::Wait(d) => {
                tokio::time::sleep(*d).await;
                Vec::new()
            }
            Step::Help => HELP.lines().map(str::to_string).collect(),
            Step::Quit => Vec::new(),
        })
    }
}

fn describe_screen(s: &crate::UssdScreen) -> String {
    format!("{}{}", s.text, if s.terminal { "  [end]" } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_parse_and_bad_lines_say_why() {
        assert_eq!(Step::parse("dial *384#").ok().flatten(), Some(Step::Dial { code: "*384#".into() }));
        assert_eq!(Step::parse("  # a comment").ok().flatten(), None);
        assert_eq!(
            Step::parse("sms 21356 OK thanks # note").ok().flatten(),
            Some(Step::Sms { to: "21356".into(), text: "OK thanks".into() })
        );
        assert_eq!(
            Step::parse("expect message \"press 1\"").ok().flatten(),
            Some(Step::Expect { what: Expect::Message, contains: Some("press 1".into()) })
        );
        assert_eq!(
            Step::parse("pay 525900 KES 150.50").ok().flatten(),
            Some(Step::Pay { to: "525900".into(), currency: "KES".into(), amount: 150.5 })
        );
        let example = include_str!("../../sdk/examples/debt_collection/phone-ignores-sms.txt");
        let steps: Vec<Step> = example.lines().filter_map(|l| Step::parse(l).ok().flatten()).collect();
        assert_eq!(steps.len(), example.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')).count());
        for bad in ["pay 525900 KES", "pay 1 KES lots", "sms 21356", "frobnicate", "expect pigeon", "wait soon"] {
            assert!(Step::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
