//! Commands of the schema that this version does not carry out yet.
//!
//! Each is answered with the reply type the SDK reads for it, a failure status and a description
//! naming the command, so an app gets a clear answer instead of a hang. The list shrinks as the
//! customer-state, messaging and payment work lands.

use crate::wire::app_to_server_command::Entry as Command;
use crate::wire::app_to_server_command_reply::Entry as Reply;
use crate::wire::{
    CustomerActivityReply, InitiatePaymentReply, LeaseCustomerAppDataReply, MessageDeliveryStatus,
    MessagingConsentUpdateStatus, PaymentStatus, ReplayPaymentReply, SendMessageReply, TagCommandReply,
    UpdateCustomerAppDataReply, UpdateCustomerStateReply, UpdateMessagingConsentReply,
};

/// Which reply message the SDK expects for a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplyKind {
    UpdateCustomerState,
    UpdateCustomerAppData,
    LeaseCustomerAppData,
    SendMessage,
    UpdateMessagingConsent,
    InitiatePayment,
    TagCommand,
    CustomerActivity,
    ReplayPayment,
}

#[derive(Debug)]
pub struct NotAvailable {
    name: &'static str,
    kind: ReplyKind,
}

impl NotAvailable {
    pub fn from_entry(entry: &Command) -> Self {
        use ReplyKind::*;
        let (name, kind) = match entry {
            Command::GenerateAuthToken(_) => ("GenerateAuthToken", UpdateCustomerState),
            Command::CreateCustomer(_) => ("CreateCustomer", UpdateCustomerState),
            Command::GetCustomerState(_) => ("GetCustomerState", UpdateCustomerState),
            Command::AdoptCustomerState(_) => ("AdoptCustomerState", UpdateCustomerState),
            Command::AddCustomerReminder(_) => ("AddCustomerReminder", UpdateCustomerAppData),
            Command::AddCustomerReminderTag(_) => ("AddCustomerReminderTag", TagCommand),
            Command::CancelCustomerReminder(_) => ("CancelCustomerReminder", UpdateCustomerAppData),
            Command::CancelCustomerReminderTag(_) => ("CancelCustomerReminderTag", TagCommand),
            Command::UpdateCustomerTag(_) => ("UpdateCustomerTag", UpdateCustomerState),
            Command::DeleteCustomerTag(_) => ("DeleteCustomerTag", UpdateCustomerState),
            Command::UpdateCustomerSecondaryId(_) => ("UpdateCustomerSecondaryId", UpdateCustomerState),
            Command::DeleteCustomerSecondaryId(_) => ("DeleteCustomerSecondaryId", UpdateCustomerState),
            Command::UpdateCustomerMetadata(_) => ("UpdateCustomerMetadata", UpdateCustomerState),
            Command::DeleteCustomerMetadata(_) => ("DeleteCustomerMetadata", UpdateCustomerState),
            Command::LeaseCustomerAppData(_) => ("LeaseCustomerAppData", LeaseCustomerAppData),
            Command::UpdateCustomerAppData(_) => ("UpdateCustomerAppData", UpdateCustomerAppData),
            Command::DeleteCustomerAppData(_) => ("DeleteCustomerAppData", UpdateCustomerAppData),
            Command::SendMessage(_) => ("SendMessage", SendMessage),
            Command::SendMessageTag(_) => ("SendMessageTag", TagCommand),
            Command::ReplyToMessage(_) => ("ReplyToMessage", SendMessage),
            Command::UpdateMessagingConsent(_) => ("UpdateMessagingConsent", UpdateMessagingConsent),
            Command::InitiatePayment(_) => ("InitiatePayment", InitiatePayment),
            Command::CustomerActivity(_) => ("CustomerActivity", CustomerActivity),
            Command::ReplayMessagingConsentUpdate(_) => ("ReplayMessagingConsentUpdate", UpdateCustomerState),
            Command::ReplayReceivedMessage(_) => ("ReplayReceivedMessage", UpdateCustomerState),
            Command::ReplaySentMessage(_) => ("ReplaySentMessage", UpdateCustomerState),
            Command::ReplayMessageStatusUpdate(_) => ("ReplayMessageStatusUpdate", UpdateCustomerState),
            Command::ReplayMessageReactionUpdate(_) => ("ReplayMessageReactionUpdate", UpdateCustomerState),
            Command::ReplayMessagingSession(_) => ("ReplayMessagingSession", UpdateCustomerState),
            Command::ReplayPayment(_) => ("ReplayPayment", ReplayPayment),
            Command::ReplayPaymentStatusUpdate(_) => ("ReplayPaymentStatusUpdate", ReplayPayment),
        };
        NotAvailable { name, kind }
    }

    pub fn reply(&self) -> Reply {
        let description = format!("{} is not available in this version of Hodi", self.name);
        match self.kind {
            ReplyKind::UpdateCustomerState => {
                Reply::UpdateCustomerState(UpdateCustomerStateReply { status: false, description, customer_id: None })
            }
            ReplyKind::UpdateCustomerAppData => Reply::UpdateCustomerAppData(UpdateCustomerAppDataReply {
                status: false,
                description,
                customer_id: None,
            }),
            ReplyKind::LeaseCustomerAppData => Reply::LeaseCustomerAppData(LeaseCustomerAppDataReply {
                status: false,
                description,
                customer_id: None,
                value: None,
            }),
            ReplyKind::SendMessage => Reply::SendMessage(SendMessageReply {
                status: MessageDeliveryStatus::NotSupported as i32,
                description,
                ..Default::default()
            }),
            ReplyKind::UpdateMessagingConsent => Reply::UpdateMessagingConsent(UpdateMessagingConsentReply {
                status: MessagingConsentUpdateStatus::ApplicationError as i32,
                description,
                customer_id: None,
            }),
            ReplyKind::InitiatePayment => Reply::InitiatePayment(InitiatePaymentReply {
                status: PaymentStatus::ApplicationError as i32,
                description,
                ..Default::default()
            }),
            ReplyKind::TagCommand => Reply::TagCommand(TagCommandReply { status: false, description, work_id: None }),
            ReplyKind::CustomerActivity => {
                Reply::CustomerActivity(CustomerActivityReply { status: false, description, customer_id: None })
            }
            ReplyKind::ReplayPayment => {
                Reply::ReplayPayment(ReplayPaymentReply { status: false, description, ..Default::default() })
            }
        }
    }
}
