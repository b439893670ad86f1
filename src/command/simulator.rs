//! Simulator-socket commands (the customer's side): ReceiveMessage is carried out by
//! [`crate::messaging::inbound`]; ReceivePayment and UpdatePaymentStatus by
//! [`crate::payment::simulator`].

use std::sync::Arc;

use hodi_rsocket::RemoteError;

use super::internal;
use crate::context::Hodi;
use crate::socket::Session;
use crate::wire::simulator_to_server_command::Entry;
use crate::wire::{
    ReceiveMessageSimulatorCommand, ReceivePaymentSimulatorCommand, SimulatorToServerCommand,
    SimulatorToServerCommandReply, UpdatePaymentStatusSimulatorCommand,
};

#[derive(Debug)]
pub enum SimulatorCommand {
    ReceiveMessage(ReceiveMessageSimulatorCommand),
    ReceivePayment(ReceivePaymentSimulatorCommand),
    UpdatePaymentStatus(UpdatePaymentStatusSimulatorCommand),
}

/// The simulator command's name as the SDKs call it, for metrics.
pub fn name(command: &SimulatorToServerCommand) -> &'static str {
    match &command.entry {
        Some(Entry::ReceiveMessage(_)) => "receiveMessage",
        Some(Entry::ReceivePayment(_)) => "receivePayment",
        Some(Entry::UpdatePaymentStatus(_)) => "updatePaymentStatus",
        None => "unknown",
    }
}

impl SimulatorCommand {
    pub fn from_proto(command: SimulatorToServerCommand) -> Result<Self, RemoteError> {
        match command.entry {
            None => Err(RemoteError::invalid(
                "empty or unknown command: the SimulatorToServerCommand sets no command this server knows",
            )),
            Some(Entry::ReceiveMessage(c)) => Ok(SimulatorCommand::ReceiveMessage(c)),
            Some(Entry::ReceivePayment(c)) => Ok(SimulatorCommand::ReceivePayment(c)),
            Some(Entry::UpdatePaymentStatus(c)) => Ok(SimulatorCommand::UpdatePaymentStatus(c)),
        }
    }

    pub async fn apply(
        self,
        hodi: &Arc<Hodi>,
        session: &Session,
    ) -> Result<SimulatorToServerCommandReply, RemoteError> {
        if !session.simulator {
            return Err(RemoteError::rejected("app sockets may not send simulator commands"));
        }
        match self {
            SimulatorCommand::ReceiveMessage(c) => {
                crate::messaging::inbound::receive(hodi, &session.org_id, &session.app_id, c).await
            }
            SimulatorCommand::ReceivePayment(c) => crate::payment::simulator::receive(hodi, session, c).await,
            SimulatorCommand::UpdatePaymentStatus(c) => {
                crate::payment::simulator::update_status(hodi, session, c).await
            }
        }
        .map_err(internal)
    }
}
