// @agentd/sdk: a client for agentd's daemon API (docs/api.md), no dependencies.
export {Client, Session} from './client.js';
export {Sandbox, Process, Processes, Context, Contexts, Files, Ports} from './sandbox.js';
export {Policy} from './policy.js';
export {defaultSocketPath} from './transport.js';
export {
	AgentdError, BadRequestError, UnauthorizedError, NotFoundError, ConflictError,
	LimitExceededError, TooLargeError, OverCapacityError, NotSupportedError, UnavailableError,
	InsufficientStorageError, ConnectionError, TimeoutError, CommandFailedError,
} from './errors.js';
