//! The console's pages as HTML. Server-rendered, with the scripts of [`super::assets`] for the
//! parts that change while one looks (the dashboard, the phone). Every value is escaped by maud.
//!
//! Owns markup only: what each page shows is handed in by [`super`].

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use super::login::Viewer;
use super::Links;
use crate::convert::utc;
use crate::customer::summary::Summary;
use crate::store::calls::CallRecord;
use crate::store::provision::ChannelNumberRow;

/// A page: the navigation when someone is logged in, then `body`.
pub fn layout(title: &str, viewer: Option<&Viewer>, body: Markup) -> Html<String> {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Hodi" }
                link rel="stylesheet" href="/console/assets/console.css";
            }
            body {
                @if let Some(v) = viewer {
                    header.top {
                        strong { "Hodi" }
                        nav {
                            a href="/console/dashboard" { "Dashboard" }
                            a href="/console/customers" { "Customers" }
                            a href="/console/calls" { "Calls" }
                            a href="/console/phone" { "Phone" }
                        }
                        span.org { "org " code id="org" { (v.org_id) } }
                        form method="post" action="/console/logout" { button type="submit" { "Log out" } }
                    }
                }
                (body)
            }
        }
    };
    Html(page.into_string())
}

pub fn dashboard(v: &Viewer) -> Html<String> {
    let body = html! {
        main.dashboard {
            h1 { "Dashboard" }
            section {
                h2 { "Connected" }
                div.cols {
                    div { h3 { "App sockets" } ul id="apps" { li.muted { "…" } } }
                    div { h3 { "Simulator sockets" } ul id="simulators" { li.muted { "…" } } }
                }
            }
            section {
                h2 { "Notifications waiting (last 10 minutes)" }
                svg id="outbox-chart" viewBox="0 0 600 120" role="img" aria-label="outbox depth over time" {}
                p.muted id="outbox-now" {}
            }
            section {
                h2 { "Latest notifications" }
                table id="recent" {
                    thead { tr { th { "When" } th { "App" } th { "Customer" } th { "Kind" } th { "Attempt" } th { "Outcome" } } }
                    tbody {}
                }
            }
        }
        script type="module" src="/console/assets/dashboard.js" {}
    };
    layout("Dashboard", Some(v), body)
}

pub fn customers(v: &Viewer, q: &str, found: Option<Option<&Summary>>) -> Html<String> {
    let body = html! {
        main {
            h1 { "Customers" }
            form.search method="get" action="/console/customers" {
                input name="q" value=(q) placeholder="customer id or number (+254…, email, handle)" required;
                button type="submit" { "Find" }
            }
            @match found {
                None => {}
                Some(None) => { p.muted id="not-found" { "No customer with id or number " code { (q) } " in this org." } }
                Some(Some(s)) => { (customer(s)) }
            }
        }
    };
    layout("Customers", Some(v), body)
}

fn pairs(p: &[(String, String)]) -> String {
    p.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}

fn customer(s: &Summary) -> Markup {
    html! {
        article id="customer" {
            h2 { "Customer " code { (s.customer_id) } }
            dl {
                dt { "Numbers" } dd { (s.numbers.join(", ")) }
                dt { "Tags" } dd id="tags" { (pairs(&s.tags)) }
                dt { "Secondary ids" } dd { (pairs(&s.secondary_ids)) }
                dt { "Metadata" } dd { (pairs(&s.metadata)) }
                dt { "Activity" } dd { (s.activity_sessions) " session(s)" }
            }
            h3 { "Messages" }
            table id="messages" {
                thead { tr { th { "When (UTC)" } th { "" } th { "Channel" } th { "Number" } th { "Text" } th { "Status" } } }
                tbody {
                    @for m in &s.messages {
                        tr class=(m.direction) {
                            td { (utc(m.at)) } td { (m.direction) } td { (m.channel) } td { (m.channel_number) }
                            td { (m.text) } td { (m.status.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
            h3 { "Wallets" }
            table id="wallets" {
                thead { tr { th { "Wallet" } th { "Currency" } th { "Available" } th { "Actual" } } }
                tbody { @for w in &s.wallets { tr { td { (w.wallet_id) } td { (w.currency) } td { (w.available) } td { (w.actual) } } } }
            }
            h3 { "Payments" }
            table id="payments" {
                thead { tr { th { "When (UTC)" } th { "From" } th { "To" } th { "Amount" } th { "Status" } } }
                tbody {
                    @for p in &s.payments {
                        tr { td { (utc(p.at)) } td { (p.from) } td { (p.to) } td { (p.currency) " " (p.amount) } td { (p.status) } }
                    }
                }
            }
        }
    }
}

pub fn calls(v: &Viewer, calls: &[(CallRecord, Vec<String>)]) -> Html<String> {
    let body = html! {
        main {
            h1 { "Calls" }
            @if calls.is_empty() { p.muted { "No SIP calls yet (simulated calls are in each customer's messages)." } }
            table id="calls" {
                thead { tr { th { "Started (UTC)" } th { "Direction" } th { "From" } th { "To" } th { "Seconds" } th { "Ended" } th { "Quality" } th { "Recordings" } } }
                tbody {
                    @for (c, files) in calls {
                        tr {
                            td { (utc(c.started_at)) } td { (c.direction) } td { (c.caller) } td { (c.callee) }
                            td { (format!("{:.1}", c.duration_ms as f64 / 1000.0)) }
                            td { (c.ending) " (" (c.sip_status) ")" }
                            td title="mean opinion score (1 to 4.5), RTCP round trip" {
                                (c.mos.map_or("-".to_string(), |m| format!("MOS {m:.2}")))
                                @if let Some(rtt) = c.rtt_ms { " · " (format!("{rtt:.0} ms")) }
                            }
                            td {
                                @for f in files {
                                    audio controls preload="none" src=(format!("/console/recordings/{}/{f}", c.session_id)) {}
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout("Calls", Some(v), body)
}

pub fn phone(v: &Viewer, no_app: bool, numbers: &[ChannelNumberRow], links: Links) -> Html<String> {
    let of =
        |channel: &str| numbers.iter().filter(|n| n.channel == channel).map(|n| n.number.clone()).collect::<Vec<_>>();
    let (sms, ussd, voice, pay) = (of("sms"), of("ussd"), of("voice"), of("cellular"));
    // The conversations a phone can have: SMS and the chat apps (the channel's wire number).
    let chats = [
        (1, "SMS", sms),
        (6, "WhatsApp", of("whatsapp")),
        (5, "Telegram", of("telegram")),
        (4, "Messenger", of("fb_messenger")),
    ];
    let body = html! {
        main.phone-page {
            h1 { "Phone" }
            @if no_app {
                p.error { "This org has no app yet; the phone connects as one of its apps' simulator sockets." }
            } @else if links.ws.is_none() && links.wss.is_none() {
                p.error { "The phone needs the WebSocket listener (listen.ws or listen.wss); both are off." }
            } @else {
                div id="phone"
                    data-ws-port=(links.ws.map(|a| a.port().to_string()).unwrap_or_default())
                    data-wss-port=(links.wss.map(|a| a.port().to_string()).unwrap_or_default())
                    {
                    div.setup {
                        label { "This phone's number " input id="number" value="+254700000123" autocomplete="off"; }
                        button id="connect" type="button" { "Use this number" }
                        span.muted id="status" { "not connected" }
                        a id="state-link" hidden href="/console/customers" { "this customer's state and balances" }
                    }
                    div.device {
                        section.screen {
                            h2 { "Messages" }
                            ol id="thread" {}
                            form id="sms-form" {
                                select id="sms-to" {
                                    @for (channel, label, list) in &chats {
                                        @for n in list { option value=(format!("{channel}|{n}")) { (label) " " (n) } }
                                    }
                                }
                                input id="sms-text" placeholder="Text message" autocomplete="off";
                                button id="sms-send" type="submit" { "Send" }
                            }
                        }
                        section.ussd {
                            h2 { "USSD" }
                            form id="ussd-dial" {
                                select id="ussd-code" { @for n in &ussd { option value=(n) { (n) } } }
                                button type="submit" { "Dial" }
                            }
                            pre id="ussd-screen" {}
                            form id="ussd-answer" hidden {
                                input id="ussd-input" autocomplete="off";
                                button type="submit" { "Reply" }
                            }
                        }
                        section.call {
                            h2 { "Call" }
                            form id="call-dial" {
                                select id="call-to" { @for n in &voice { option value=(n) { (n) } } }
                                button type="submit" { "Call" }
                                button id="call-audio" type="button" title="a real call: your microphone and speaker, over WebRTC" { "Call with audio" }
                            }
                            p.muted id="call-state" { "no call" }
                            ol id="call-said" {}
                            div id="keypad" hidden {
                                @for k in ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"] {
                                    button type="button" data-key=(k) { (k) }
                                }
                                button id="answer" type="button" { "Answer" }
                                button id="hang-up" type="button" { "Hang up" }
                            }
                        }
                        section.pay {
                            h2 { "Payments" }
                            div id="checkout" hidden {
                                p id="checkout-text" {}
                                button id="confirm" type="button" { "Confirm" }
                                button id="decline" type="button" { "Decline" }
                            }
                            form id="pay-form" {
                                select id="pay-to" { @for n in &pay { option value=(n) { "Paybill " (n) } } }
                                input id="pay-currency" value="KES" size="4";
                                input id="pay-amount" type="number" min="1" step="any" placeholder="Amount";
                                button type="submit" { "Pay" }
                            }
                            ul id="payments" {}
                        }
                    }
                }
                script type="module" src="/console/assets/phone.js" {}
            }
        }
    };
    layout("Phone", Some(v), body)
}

/// The login form, with what went wrong if anything.
pub fn login(message: Option<&str>, status: StatusCode) -> Response {
    let page = html! {
        main.login {
            h1 { "Hodi console" }
            p { "Log in with your org id and one of its API keys (" code { "hodi provision api-key --org …" } ")." }
            @if let Some(m) = message { p.error role="alert" { (m) } }
            form method="post" action="/console/login" {
                label { "Org id" input name="org" autocomplete="username" required; }
                label { "API key" input name="key" type="password" autocomplete="current-password" required; }
                button type="submit" { "Log in" }
            }
        }
    };
    (status, layout("Log in", None, page)).into_response()
}
