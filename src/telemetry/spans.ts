import { Effect, References, type Tracer } from "effect"

/**
 * Trace options for spans opened on every request or upstream call: a captured stack trace costs
 * an Error per span (most of a span's price when no exporter is installed) and names a line of
 * the engine, which the span's name already does.
 */
export const perCallSpan: Tracer.TraceOptions = { captureStackTrace: false }

/**
 * `Effect.withSpan` for a span opened on every request or upstream call. With no span recorded
 * (no OTLP endpoint: `References.TracerEnabled` is off) the effect runs as it is: no no-op span,
 * no context holding it and no finalizer ending it, which cost more than a cheap effect itself.
 */
export const withPerCallSpan =
  (name: string, attributes: Readonly<Record<string, unknown>>) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.withFiber((fiber) =>
      fiber.getRef(References.TracerEnabled)
        ? self.pipe(Effect.withSpan(name, { attributes }, perCallSpan))
        : self,
    )

/**
 * `Effect.fn(name)` for a method on the per-request path, at the price of a plain call when no
 * span is recorded (no OTLP endpoint: `References.TracerEnabled` is off). `Effect.fn` captures a
 * call-site stack and opens a span, no-op or not, on every call: a third of a turn's CPU here.
 */
export const tracedFn =
  (name: string) =>
  <Args extends Array<unknown>, A, E, R>(
    body: (...args: Args) => Effect.Effect<A, E, R>,
  ): ((...args: Args) => Effect.Effect<A, E, R>) => {
    const traced = Effect.fn(name)(body) as (...args: Args) => Effect.Effect<A, E, R>
    return (...args) =>
      Effect.withFiber((fiber) => (fiber.getRef(References.TracerEnabled) ? traced(...args) : body(...args)))
  }
