//! Commands: one file per command (or close family). Each command is parsed from its protobuf form
//! by `from_proto` (validation happens there, before anything is touched) and then `apply`'d against
//! the server state, returning the reply message the Elarian SDKs read for that command.
//!
//! Owns the meaning of every command. Does not own storage (see [`crate::store`]) or delivery of
//! notifications (see [`crate::notify`]).
//!
//! Errors: a command that is understood but fails (unknown customer, invalid input) is answered
//! with its own reply type, `status` false (or the failure status) and a `description` saying why —
//! the SDK reads those. Only input that is not a command at all (bad protobuf, no entry) is
//! answered with an RSocket ERROR frame, which the SDK surfaces as a rejected promise.

mod adopt_customer_state;
mod app_data;
mod create_customer;
mod customer_activity;
pub mod customer_ref;
mod customer_reminder;
mod generate_auth_token;
mod get_customer_state;
mod identity;
mod initiate_payment;
mod messaging_consent;
mod reminder_tag;
mod replay;
mod replay_payment;
mod reply_to_message;
mod send_message;
mod send_message_tag;
mod simulator;

pub use customer_ref::CustomerRef;
pub use simulator::{name as simulator_command_name, SimulatorCommand};

use std::sync::Arc;

use bytes::Bytes;
use hodi_rsocket::RemoteError;

use crate::context::Hodi;
use crate::socket::Session;
use crate::wire::app_to_server_command::Entry;
use crate::wire::{AppToServerCommand, AppToServerCommandReply};

use adopt_customer_state::AdoptCustomerState;
use app_data::AppDataCommand;
use create_customer::CreateCustomer;
use customer_activity::RecordActivity;
use customer_reminder::{AddCustomerReminder, CancelCustomerReminder};
use generate_auth_token::GenerateAuthToken;
use get_customer_state::GetCustomerState;
use identity::{Change, IdentityCommand};
use initiate_payment::InitiatePayment;
use messaging_consent::UpdateConsent;
use reminder_tag::ReminderTagCommand;
use replay::Replay;
use replay_payment::ReplayPayment;
use reply_to_message::ReplyToMessage;
use send_message::SendMessage;
use send_message_tag::SendMessageTag;

/// A parsed app-socket command.
#[derive(Debug)]
pub enum AppCommand {
    GenerateAuthToken(GenerateAuthToken),
    CreateCustomer(CreateCustomer),
    GetCustomerState(GetCustomerState),
    AdoptCustomerState(AdoptCustomerState),
    AddCustomerReminder(AddCustomerReminder),
    CancelCustomerReminder(CancelCustomerReminder),
    ReminderTag(ReminderTagCommand),
    Identity(IdentityCommand),
    AppData(AppDataCommand),
    CustomerActivity(RecordActivity),
    SendMessage(SendMessage),
    SendMessageTag(SendMessageTag),
    ReplyToMessage(ReplyToMessage),
    UpdateConsent(UpdateConsent),
    Replay(Replay),
    InitiatePayment(InitiatePayment),
    ReplayPayment(ReplayPayment),
}

impl AppCommand {
    /// Parses and validates. `raw` is the request bytes, for checks the decoded form cannot make.
    pub fn from_proto(command: AppToServerCommand, raw: &Bytes) -> Result<AppCommand, RemoteError> {
        let Some(entry) = command.entry else {
            return Err(RemoteError::invalid(if raw.is_empty() {
                "empty command: the request carries no AppToServerCommand".to_string()
            } else {
                "unknown command: the AppToServerCommand sets no command this server knows".to_string()
            }));
        };
        Ok(match entry {
            Entry::GenerateAuthToken(_) => AppCommand::GenerateAuthToken(GenerateAuthToken::from_proto(raw)?),
            Entry::CreateCustomer(c) => AppCommand::CreateCustomer(CreateCustomer::from_proto(c)),
            Entry::GetCustomerState(c) => AppCommand::GetCustomerState(GetCustomerState::from_proto(c)),
            Entry::AdoptCustomerState(c) => AppCommand::AdoptCustomerState(AdoptCustomerState::from_proto(c)),
            Entry::AddCustomerReminder(c) => AppCommand::AddCustomerReminder(AddCustomerReminder::from_proto(c)),
            Entry::CancelCustomerReminder(c) => {
                AppCommand::CancelCustomerReminder(CancelCustomerReminder::from_proto(c))
            }
            Entry::AddCustomerReminderTag(c) => AppCommand::ReminderTag(ReminderTagCommand::add(c)),
            Entry::CancelCustomerReminderTag(c) => AppCommand::ReminderTag(ReminderTagCommand::cancel(c)),
            Entry::UpdateCustomerTag(c) => identity_command(c.customer.into(), Change::UpdateTags(c.updates)),
            Entry::DeleteCustomerTag(c) => identity_command(c.customer.into(), Change::DeleteTags(c.deletions)),
            Entry::UpdateCustomerSecondaryId(c) => {
                identity_command(c.customer.into(), Change::UpdateSecondaryIds(c.updates))
            }
            Entry::DeleteCustomerSecondaryId(c) => {
                identity_command(c.customer.into(), Change::DeleteSecondaryIds(c.deletions))
            }
            Entry::UpdateCustomerMetadata(c) => identity_command(c.customer.into(), Change::UpdateMetadata(c.updates)),
            Entry::DeleteCustomerMetadata(c) => {
                identity_command(c.customer.into(), Change::DeleteMetadata(c.deletions))
            }
            Entry::LeaseCustomerAppData(c) => AppCommand::AppData(AppDataCommand::Lease(c.customer.into())),
            Entry::UpdateCustomerAppData(c) => AppCommand::AppData(AppDataCommand::Update(c.customer.into(), c.update)),
            Entry::DeleteCustomerAppData(c) => AppCommand::AppData(AppDataCommand::Delete(c.customer.into())),
            Entry::CustomerActivity(c) => AppCommand::CustomerActivity(RecordActivity::from_proto(c)),
            Entry::SendMessage(c) => AppCommand::SendMessage(SendMessage::from_proto(c)),
            Entry::SendMessageTag(c) => AppCommand::SendMessageTag(SendMessageTag::from_proto(c)),
            Entry::ReplyToMessage(c) => AppCommand::ReplyToMessage(ReplyToMessage::from_proto(c)),
            Entry::UpdateMessagingConsent(c) => AppCommand::UpdateConsent(UpdateConsent::from_proto(c)),
            Entry::ReplayReceivedMessage(c) => AppCommand::Replay(Replay::Received(c)),
            Entry::ReplaySentMessage(c) => AppCommand::Replay(Replay::Sent(c)),
            Entry::ReplayMessageStatusUpdate(c) => AppCommand::Replay(Replay::Status(c)),
            Entry::ReplayMessageReactionUpdate(c) => AppCommand::Replay(Replay::Reaction(c)),
            Entry::ReplayMessagingSession(c) => AppCommand::Replay(Replay::Session(c)),
            Entry::ReplayMessagingConsentUpdate(c) => AppCommand::Replay(Replay::Consent(c)),
            Entry::InitiatePayment(c) => AppCommand::InitiatePayment(InitiatePayment::from_proto(c)),
            Entry::ReplayPayment(c) => AppCommand::ReplayPayment(ReplayPayment::Payment(c)),
            Entry::ReplayPaymentStatusUpdate(c) => AppCommand::ReplayPayment(ReplayPayment::Status(c)),
        })
    }

    pub async fn apply(self, hodi: &Arc<Hodi>, session: &Session) -> Result<AppToServerCommandReply, RemoteError> {
        if session.simulator {
            return Err(RemoteError::rejected("simulator sockets may only send simulator commands"));
        }
        let entry = match self {
            AppCommand::GenerateAuthToken(c) => c.apply(hodi, session).await?,
            AppCommand::CreateCustomer(c) => c.apply(hodi, session).await?,
            AppCommand::GetCustomerState(c) => c.apply(hodi, session).await?,
            AppCommand::AdoptCustomerState(c) => c.apply(hodi, session).await?,
            AppCommand::AddCustomerReminder(c) => c.apply(hodi, session).await?,
            AppCommand::CancelCustomerReminder(c) => c.apply(hodi, session).await?,
            AppCommand::ReminderTag(c) => c.apply(hodi, session).await?,
            AppCommand::Identity(c) => c.apply(hodi, session).await?,
            AppCommand::AppData(c) => c.apply(hodi, session).await?,
            AppCommand::CustomerActivity(c) => c.apply(hodi, session).await?,
            AppCommand::SendMessage(c) => c.apply(hodi, session).await?,
            AppCommand::SendMessageTag(c) => c.apply(hodi, session).await?,
            AppCommand::ReplyToMessage(c) => c.apply(hodi, session).await?,
            AppCommand::UpdateConsent(c) => c.apply(hodi, session).await?,
            AppCommand::Replay(c) => c.apply(hodi, session).await?,
            AppCommand::InitiatePayment(c) => c.apply(hodi, session).await?,
            AppCommand::ReplayPayment(c) => c.apply(hodi, session).await?,
        };
        Ok(AppToServerCommandReply { entry: Some(entry) })
    }
}

/// The action of by-tag work whose node died, rebuilt from the command kept with it (the
/// [`crate::work::resume::Rebuild`] the server hands the work module).
pub fn resume_work(order: &crate::work::WorkOrder) -> Result<crate::work::Action, String> {
    match order.kind.as_str() {
        send_message_tag::KIND => send_message_tag::resume(order),
        reminder_tag::ADD_KIND | reminder_tag::CANCEL_KIND => reminder_tag::resume(order),
        other => Err(format!("no by-tag command starts work of kind {other}")),
    }
}

/// The command's name as the Elarian SDKs call it, for metrics (a fixed set: never data).
pub fn name(command: &AppToServerCommand) -> &'static str {
    match &command.entry {
        None => "unknown",
        Some(entry) => match entry {
            Entry::GenerateAuthToken(_) => "generateAuthToken",
            Entry::CreateCustomer(_) => "createCustomer",
            Entry::GetCustomerState(_) => "getCustomerState",
            Entry::AdoptCustomerState(_) => "adoptCustomerState",
            Entry::AddCustomerReminder(_) => "addCustomerReminder",
            Entry::CancelCustomerReminder(_) => "cancelCustomerReminder",
            Entry::AddCustomerReminderTag(_) => "addCustomerReminderByTag",
            Entry::CancelCustomerReminderTag(_) => "cancelCustomerReminderByTag",
            Entry::UpdateCustomerTag(_) => "updateCustomerTag",
            Entry::DeleteCustomerTag(_) => "deleteCustomerTag",
            Entry::UpdateCustomerSecondaryId(_) => "updateCustomerSecondaryId",
            Entry::DeleteCustomerSecondaryId(_) => "deleteCustomerSecondaryId",
            Entry::UpdateCustomerMetadata(_) => "updateCustomerMetadata",
            Entry::DeleteCustomerMetadata(_) => "deleteCustomerMetadata",
            Entry::LeaseCustomerAppData(_) => "leaseCustomerAppData",
            Entry::UpdateCustomerAppData(_) => "updateCustomerAppData",
            Entry::DeleteCustomerAppData(_) => "deleteCustomerAppData",
            Entry::CustomerActivity(_) => "customerActivity",
            Entry::SendMessage(_) => "sendMessage",
            Entry::SendMessageTag(_) => "sendMessageByTag",
            Entry::ReplyToMessage(_) => "replyToMessage",
            Entry::UpdateMessagingConsent(_) => "updateMessagingConsent",
            Entry::ReplayReceivedMessage(_) => "replayReceivedMessage",
            Entry::ReplaySentMessage(_) => "replaySentMessage",
            Entry::ReplayMessageStatusUpdate(_) => "replayMessageStatusUpdate",
            Entry::ReplayMessageReactionUpdate(_) => "replayMessageReactionUpdate",
            Entry::ReplayMessagingSession(_) => "replayMessagingSession",
            Entry::ReplayMessagingConsentUpdate(_) => "replayMessagingConsentUpdate",
            Entry::InitiatePayment(_) => "initiatePayment",
            Entry::ReplayPayment(_) => "replayPayment",
            Entry::ReplayPaymentStatusUpdate(_) => "replayPaymentStatusUpdate",
        },
    }
}

fn identity_command(customer: CustomerRef, change: Change) -> AppCommand {
    AppCommand::Identity(IdentityCommand::new(customer, change))
}

/// A store failure, as the ERROR frame a client sees (details stay in the server log).
pub(crate) fn internal(e: anyhow::Error) -> RemoteError {
    tracing::error!(error = %e, "store error");
    RemoteError::application("internal server error; the operation was not applied")
}

/// A store error as a command's answer: the reason to reply with when the store refused the
/// update (the customer would hold more than allowed), else an internal error.
pub(crate) fn refusal(e: anyhow::Error) -> Result<String, RemoteError> {
    match e.downcast::<crate::store::identity::OverAllowance>() {
        Ok(over) => Ok(over.to_string()),
        Err(e) => Err(internal(e)),
    }
}
