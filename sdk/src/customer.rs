//! [`Customer`]: every command about one customer, addressed by number, id or secondary id.

use std::collections::HashMap;

use hodi_wire as wire;
use wire::app_to_server_command::Entry as Cmd;
use wire::app_to_server_command_reply::Entry as Reply;

use crate::client::{message_reply, unexpected, MessageReply};
use crate::model::{short_name, AppData, Reminder, Tag};
use crate::{Elarian, Error, Result};

/// How a customer is addressed.
#[derive(Debug, Clone, PartialEq)]
pub enum CustomerRef {
    Id(String),
    Number(wire::CustomerNumber),
    SecondaryId(Tag),
}

/// Fills a command's `customer` oneof (each command has its own generated type).
macro_rules! customer_of {
    ($who:expr, $module:ident) => {
        match $who.clone() {
            CustomerRef::Id(id) => wire::$module::Customer::CustomerId(id),
            CustomerRef::Number(n) => wire::$module::Customer::CustomerNumber(n),
            CustomerRef::SecondaryId(t) => wire::$module::Customer::SecondaryId(t.mapping()),
        }
    };
}

/// A customer's state as the server keeps it.
pub type CustomerState = wire::CustomerStateReplyData;

/// One customer. Cheap to clone; creating one sends nothing.
#[derive(Debug, Clone)]
pub struct Customer {
    client: Elarian,
    who: CustomerRef,
}

impl Customer {
    pub(crate) fn new(client: Elarian, who: CustomerRef) -> Customer {
        Customer { client, who }
    }

    /// The client this customer's commands go through.
    pub fn client(&self) -> &Elarian {
        &self.client
    }

    pub fn reference(&self) -> &CustomerRef {
        &self.who
    }

    /// The customer's id; looked up (creating the customer) unless it is how this one is addressed.
    pub async fn id(&self) -> Result<String> {
        match &self.who {
            CustomerRef::Id(id) => Ok(id.clone()),
            _ => Ok(self.get_state().await?.customer_id),
        }
    }

    /// A number to message: the one this customer is addressed by, else the first on record.
    pub async fn number(&self) -> Result<wire::CustomerNumber> {
        if let CustomerRef::Number(n) = &self.who {
            return Ok(n.clone());
        }
        let state = self.get_state().await?;
        state
            .activity_state
            .and_then(|a| a.customer_numbers.into_iter().next())
            .ok_or_else(|| Error::Invalid("this customer has no customer number on record to send to".into()))
    }

    /// Everything the server knows about the customer (a new number creates the customer).
    pub async fn get_state(&self) -> Result<CustomerState> {
        let cmd = wire::GetCustomerStateCommand { customer: Some(customer_of!(self.who, get_customer_state_command)) };
        match self.client.command(Cmd::GetCustomerState(cmd)).await? {
            Reply::GetCustomerState(r) if r.status => {
                r.data.ok_or_else(|| Error::Protocol("GetCustomerState succeeded without data".into()))
            }
            Reply::GetCustomerState(r) => Err(Error::refused(r.description)),
            other => Err(unexpected("GetCustomerState", &other)),
        }
    }

    /// Merges `other`'s state into this customer's (the other is decommissioned).
    pub async fn adopt_state(&self, other: &Customer) -> Result<String> {
        use wire::adopt_customer_state_command::OtherCustomer;
        let other_customer = match other.who.clone() {
            CustomerRef::Id(id) => OtherCustomer::OtherCustomerId(id),
            CustomerRef::Number(n) => OtherCustomer::OtherCustomerNumber(n),
            CustomerRef::SecondaryId(t) => OtherCustomer::OtherSecondaryId(t.mapping()),
        };
        let cmd =
            wire::AdoptCustomerStateCommand { customer_id: self.id().await?, other_customer: Some(other_customer) };
        update_reply(self.client.command(Cmd::AdoptCustomerState(cmd)).await?)
    }

    /// Sends `message` to the customer on `channel`.
    pub async fn send_message(
        &self,
        channel: wire::MessagingChannelNumber,
        message: wire::OutboundMessage,
    ) -> Result<MessageReply> {
        let cmd = wire::SendMessageCommand {
            customer_number: Some(self.number().await?),
            channel_number: Some(channel),
            message: Some(message),
        };
        match self.client.command(Cmd::SendMessage(cmd)).await? {
            Reply::SendMessage(r) => message_reply(r),
            other => Err(unexpected("SendMessage", &other)),
        }
    }

    /// Answers the customer's message `message_id` on the channel it came in on.
    pub async fn reply_to_message(
        &self,
        message_id: impl Into<String>,
        message: wire::OutboundMessage,
    ) -> Result<MessageReply> {
        let cmd = wire::ReplyToMessageCommand {
            customer_id: self.id().await?,
            message_id: message_id.into(),
            message: Some(message),
        };
        match self.client.command(Cmd::ReplyToMessage(cmd)).await? {
            Reply::SendMessage(r) => message_reply(r),
            other => Err(unexpected("ReplyToMessage", &other)),
        }
    }

    /// Records an activity (a page view, an app event) in a session from `source`.
    pub async fn update_activity(
        &self,
        source: impl Into<String>,
        session_id: impl Into<String>,
        key: impl Into<String>,
        properties: HashMap<String, String>,
    ) -> Result<String> {
        let cmd = wire::CustomerActivityCommand {
            customer_number: Some(self.number().await?),
            source: source.into(),
            session_id: session_id.into(),
            key: key.into(),
            properties,
        };
        match self.client.command(Cmd::CustomerActivity(cmd)).await? {
            Reply::CustomerActivity(r) if r.status => Ok(r.customer_id.unwrap_or_default()),
            Reply::CustomerActivity(r) => Err(Error::refused(r.description)),
            other => Err(unexpected("CustomerActivity", &other)),
        }
    }

    /// Allows or blocks messages to the customer on `channel`.
    pub async fn update_messaging_consent(
        &self,
        channel: wire::MessagingChannelNumber,
        update: wire::MessagingConsentUpdate,
    ) -> Result<String> {
        let cmd = wire::UpdateMessagingConsentCommand {
            customer_number: Some(self.number().await?),
            channel_number: Some(channel),
            update: update as i32,
        };
        match self.client.command(Cmd::UpdateMessagingConsent(cmd)).await? {
            Reply::UpdateMessagingConsent(r) => {
                let name = wire::MessagingConsentUpdateStatus::try_from(r.status)
                    .map(|s| s.as_str_name())
                    .unwrap_or("UNKNOWN");
                let status = short_name(name, "MESSAGING_CONSENT_UPDATE_STATUS_");
                if r.status >= 400 || r.status == 0 {
                    return Err(Error::Status { status, description: r.description });
                }
                Ok(status)
            }
            other => Err(unexpected("UpdateMessagingConsent", &other)),
        }
    }

    /// Reads the app data and holds it for this client until updated (or the lease ends).
    pub async fn lease_app_data(&self) -> Result<Option<AppData>> {
        let cmd = wire::LeaseCustomerAppDataCommand {
            customer: Some(customer_of!(self.who, lease_customer_app_data_command)),
        };
        match self.client.command(Cmd::LeaseCustomerAppData(cmd)).await? {
            Reply::LeaseCustomerAppData(r) if r.status => Ok(AppData::from_wire(r.value)),
            Reply::LeaseCustomerAppData(r) => Err(Error::refused(r.description)),
            other => Err(unexpected("LeaseCustomerAppData", &other)),
        }
    }

    pub async fn update_app_data(&self, data: impl Into<AppData>) -> Result<String> {
        let cmd = wire::UpdateCustomerAppDataCommand {
            customer: Some(customer_of!(self.who, update_customer_app_data_command)),
            update: Some(data.into().to_wire()),
        };
        app_data_reply(self.client.command(Cmd::UpdateCustomerAppData(cmd)).await?)
    }

    pub async fn delete_app_data(&self) -> Result<String> {
        let cmd = wire::DeleteCustomerAppDataCommand {
            customer: Some(customer_of!(self.who, delete_customer_app_data_command)),
        };
        app_data_reply(self.client.command(Cmd::DeleteCustomerAppData(cmd)).await?)
    }

    pub async fn update_metadata(&self, data: HashMap<String, AppData>) -> Result<String> {
        let cmd = wire::UpdateCustomerMetadataCommand {
            customer: Some(customer_of!(self.who, update_customer_metadata_command)),
            updates: data.into_iter().map(|(k, v)| (k, v.to_wire())).collect(),
        };
        update_reply(self.client.command(Cmd::UpdateCustomerMetadata(cmd)).await?)
    }

    pub async fn delete_metadata(&self, keys: &[&str]) -> Result<String> {
        let cmd = wire::DeleteCustomerMetadataCommand {
            customer: Some(customer_of!(self.who, delete_customer_metadata_command)),
            deletions: keys.iter().map(|k| k.to_string()).collect(),
        };
        update_reply(self.client.command(Cmd::DeleteCustomerMetadata(cmd)).await?)
    }

    pub async fn update_secondary_ids(&self, ids: &[Tag]) -> Result<String> {
        let cmd = wire::UpdateCustomerSecondaryIdCommand {
            customer: Some(customer_of!(self.who, update_customer_secondary_id_command)),
            updates: ids.iter().map(Tag::to_wire).collect(),
        };
        update_reply(self.client.command(Cmd::UpdateCustomerSecondaryId(cmd)).await?)
    }

    pub async fn delete_secondary_ids(&self, ids: &[Tag]) -> Result<String> {
        let cmd = wire::DeleteCustomerSecondaryIdCommand {
            customer: Some(customer_of!(self.who, delete_customer_secondary_id_command)),
            deletions: ids.iter().map(Tag::mapping).collect(),
        };
        update_reply(self.client.command(Cmd::DeleteCustomerSecondaryId(cmd)).await?)
    }

    pub async fn update_tags(&self, tags: &[Tag]) -> Result<String> {
        let cmd = wire::UpdateCustomerTagCommand {
            customer: Some(customer_of!(self.who, update_customer_tag_command)),
            updates: tags.iter().map(Tag::to_wire).collect(),
        };
        update_reply(self.client.command(Cmd::UpdateCustomerTag(cmd)).await?)
    }

    pub async fn delete_tags(&self, keys: &[&str]) -> Result<String> {
        let cmd = wire::DeleteCustomerTagCommand {
            customer: Some(customer_of!(self.who, delete_customer_tag_command)),
            deletions: keys.iter().map(|k| k.to_string()).collect(),
        };
        update_reply(self.client.command(Cmd::DeleteCustomerTag(cmd)).await?)
    }

    /// Sets a reminder (a `reminder` notification at `remind_at`, repeating every `interval`).
    pub async fn add_reminder(&self, reminder: Reminder) -> Result<String> {
        let cmd = wire::AddCustomerReminderCommand {
            customer: Some(customer_of!(self.who, add_customer_reminder_command)),
            reminder: Some(reminder.to_wire()),
        };
        update_reply(self.client.command(Cmd::AddCustomerReminder(cmd)).await?)
    }

    pub async fn cancel_reminder(&self, key: impl Into<String>) -> Result<String> {
        let cmd = wire::CancelCustomerReminderCommand {
            customer: Some(customer_of!(self.who, cancel_customer_reminder_command)),
            key: key.into(),
        };
        update_reply(self.client.command(Cmd::CancelCustomerReminder(cmd)).await?)
    }
}

/// The customer id of a successful state update. Reminder commands answer with the app-data
/// reply (as Elarian's schema has it), so both shapes are accepted.
fn update_reply(reply: Reply) -> Result<String> {
    match reply {
        Reply::UpdateCustomerState(r) if r.status => Ok(r.customer_id.unwrap_or_default()),
        Reply::UpdateCustomerState(r) => Err(Error::refused(r.description)),
        other => app_data_reply(other),
    }
}

fn app_data_reply(reply: Reply) -> Result<String> {
    match reply {
        Reply::UpdateCustomerAppData(r) if r.status => Ok(r.customer_id.unwrap_or_default()),
        Reply::UpdateCustomerAppData(r) => Err(Error::refused(r.description)),
        other => Err(unexpected("app data update", &other)),
    }
}
