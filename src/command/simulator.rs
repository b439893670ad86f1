//! Simulator-socket commands (the customer's side): ReceiveMessage is carried out by
//! [`crate::messaging::inbound`]; ReceivePayment and UpdatePaymentStatus come with payments and
//! are answered `status: false` saying so.

use std::sync::Arc;

use hodi_rsocket::RemoteError;

use super::internal;
use crate::server::Hodi;
use crate::session::Session;
use crate::wire::simulator_to_server_command::Entry;
use crate::wire::{ReceiveMessageSimulatorCommand, SimulatorToServerCommand, SimulatorToServerCommandReply};

#[derive(Debug)]
pub enum SimulatorCommand {
    ReceiveMessage(ReceiveMessageSimulatorCommand),
    ReceivePayment,
    UpdatePaymentStatus,
}

impl SimulatorCommand {
    pub fn from_proto(command: SimulatorToServerCommand) -> Result<Self, RemoteError> {
        match command.entry {
            None => Err(RemoteError::invalid(
                "empty or unknown command: the SimulatorToServerCommand sets no command this server knows",
            )),
            Some(Entry::ReceiveMessage(c)) => Ok(SimulatorCommand::ReceiveMessage(c)),
            Some(Entry::ReceivePayment(_)) => Ok(SimulatorCommand::ReceivePayment),
            Some(Entry::UpdatePaymentStatus(_)) => Ok(SimulatorCommand::UpdatePaymentStatus),
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
        let name = match self {
            SimulatorCommand::ReceiveMessage(c) => {
                return crate::messaging::inbound::receive(hodi, session, c).await.map_err(internal)
            }
            SimulatorCommand::ReceivePayment => "ReceivePayment",
            SimulatorCommand::UpdatePaymentStatus => "UpdatePaymentStatus",
        };
        Ok(SimulatorToServerCommandReply {
            status: false,
            description: format!("{name} is not available in this version of Hodi"),
            message: None,
        })
    }
}
