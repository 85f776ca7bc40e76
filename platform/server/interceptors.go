package server

import (
	"context"
	"errors"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/oklog/ulid/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/store"
)

// RequestIDKey is the metadata key that carries a request id end to end.
const RequestIDKey = "x-request-id"

type requestIDCtx struct{}

// RequestID returns the request id of ctx ("" outside a request).
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDCtx{}).(string)
	return id
}

func requestIDFrom(ctx context.Context) string {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(RequestIDKey); len(v) > 0 && v[0] != "" && len(v[0]) <= 128 {
			return v[0]
		}
	}
	return ulid.Make().String()
}

// requestIDUnary makes sure every call has a request id, in its context and
// in its response headers.
func requestIDUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	id := requestIDFrom(ctx)
	_ = grpc.SetHeader(ctx, metadata.Pairs(RequestIDKey, id))
	return next(context.WithValue(ctx, requestIDCtx{}, id), req)
}

func requestIDStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	id := requestIDFrom(ss.Context())
	_ = ss.SetHeader(metadata.Pairs(RequestIDKey, id))
	return next(srv, &ctxStream{ServerStream: ss, ctx: context.WithValue(ss.Context(), requestIDCtx{}, id)})
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

// zapLogger adapts zap to go-grpc-middleware's logging interface.
func zapLogger(l *zap.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		if !l.Core().Enabled(zapLevel(lvl)) {
			return // successful calls log at debug: skip building their fields
		}
		zf := make([]zap.Field, 0, len(fields)/2+1)
		for i := 0; i+1 < len(fields); i += 2 {
			key, _ := fields[i].(string)
			zf = append(zf, zap.Any(key, fields[i+1]))
		}
		if id := RequestID(ctx); id != "" {
			zf = append(zf, zap.String("request_id", id))
		}
		switch lvl {
		case logging.LevelDebug:
			l.Debug(msg, zf...)
		case logging.LevelInfo:
			l.Info(msg, zf...)
		case logging.LevelWarn:
			l.Warn(msg, zf...)
		default:
			l.Error(msg, zf...)
		}
	})
}

func zapLevel(l logging.Level) zapcore.Level {
	switch l {
	case logging.LevelDebug:
		return zapcore.DebugLevel
	case logging.LevelInfo:
		return zapcore.InfoLevel
	case logging.LevelWarn:
		return zapcore.WarnLevel
	}
	return zapcore.ErrorLevel
}

// callLevel keeps the access log quiet for successful calls: at the default
// info level only failures are written, so logging does not cost a write per request.
//
// An error is logged once, at error level, by the one place that knows its
// cause: the error mask (an internal error, with the error itself) or the
// recovery handler (a panic, with its stack). The access log's line for
// that call is the record of the call, at info.
func callLevel(c codes.Code) logging.Level {
	switch c {
	case codes.OK:
		return logging.LevelDebug
	case codes.DataLoss, codes.Unavailable, codes.DeadlineExceeded:
		return logging.LevelWarn
	default:
		return logging.LevelInfo
	}
}

// maskError turns anything that is not a deliberate client-facing error into
// INTERNAL with a request id, after logging the real cause once (temporal's
// mask_internal_error pattern). Context errors keep their own codes; a
// database that cannot be reached is UNAVAILABLE, which clients retry.
func maskError(log *zap.Logger) func(ctx context.Context, method string, err error) error {
	return func(ctx context.Context, method string, err error) error {
		if err == nil {
			return nil
		}
		switch {
		case errors.Is(err, context.Canceled):
			return status.Error(codes.Canceled, "request canceled")
		case errors.Is(err, context.DeadlineExceeded):
			return status.Error(codes.DeadlineExceeded, "deadline exceeded")
		}
		if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown && st.Code() != codes.Internal {
			return err
		}
		if apierr.Reason(err) == reasonInternal {
			return err // masked already (the recovery handler's, which logged the panic)
		}
		id := RequestID(ctx)
		if store.Unavailable(err) {
			log.Warn("database unavailable", zap.String("method", method), zap.String("request_id", id), zap.Error(err))
			return apierr.Status(codes.Unavailable, "", "DATABASE_UNAVAILABLE",
				"the database is unavailable; retry shortly (request id "+id+")", nil).Err()
		}
		log.Error("internal error", zap.String("method", method), zap.String("request_id", id), zap.Error(err))
		return internalError(id)
	}
}

func maskUnary(log *zap.Logger) grpc.UnaryServerInterceptor {
	mask := maskError(log)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		resp, err := next(ctx, req)
		if err != nil {
			return nil, mask(ctx, info.FullMethod, err)
		}
		return resp, nil
	}
}

func maskStream(log *zap.Logger) grpc.StreamServerInterceptor {
	mask := maskError(log)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
		return mask(ss.Context(), info.FullMethod, next(srv, ss))
	}
}

// reasonInternal is the reason of every masked error.
const reasonInternal = "INTERNAL"

// internalError is what a client sees of an internal error or a panic: the
// request id to quote, nothing of the cause.
func internalError(requestID string) error {
	return apierr.Status(codes.Internal, "", reasonInternal, "internal error; request id "+requestID, nil).Err()
}
