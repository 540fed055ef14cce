// The package's programmatic interface: a client of the RPC protocol.
export { Cryo, CryoRpcError, type CryoClientOptions, type OperationOptions, type NotifyHandler, type CriuOptsInit } from './rpc/client.js';
