import type { FastifyError, FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { TributaryError, errorCatalog, isErrorCode, type ErrorBody } from '../../shared/errors.ts';

export const ErrorReply = Type.Object({
  code: Type.String({ enum: Object.keys(errorCatalog) }),
  message: Type.String(),
});

/** Every REST failure leaves as `{ code, message }` with the code's HTTP status. */
export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | TributaryError, request, reply) => {
    let status: number;
    let body: ErrorBody;
    if (error instanceof TributaryError) {
      status = error.status;
      body = error.toBody();
    } else if ((error as FastifyError).validation) {
      status = 400;
      body = { code: 'BAD_REQUEST', message: error.message };
    } else if (typeof error.statusCode === 'number' && error.statusCode < 500) {
      status = error.statusCode;
      body = { code: isErrorCode(error.code) ? error.code : 'BAD_REQUEST', message: error.message };
    } else {
      request.log.error({ err: error }, 'request failed');
      status = 500;
      body = { code: 'INTERNAL', message: errorCatalog.INTERNAL.message };
    }
    void reply.code(status).send(body);
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send(new TributaryError('NOT_FOUND', `${request.method} ${request.url.split('?')[0]!.slice(0, 200)}`).toBody());
  });
}
