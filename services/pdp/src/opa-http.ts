// OPA's REST vocabulary the Data API speaks: its error bodies and its warnings.

/** OPA's error codes (v1/server/types), plus ours for the concurrency limit. */
export type OpaErrorCode =
  | 'invalid_parameter'
  | 'invalid_operation'
  | 'internal_error'
  | 'undefined_document'
  | 'too_many_requests';

export interface OpaErrorBody {
  code: OpaErrorCode;
  message: string;
  errors?: { code: string; message: string; details?: unknown }[];
}

export const MISSING_INPUT_WARNING = {
  code: 'api_usage_warning',
  message: "'input' key missing from the request",
};

export const PARTIAL_TREE_WARNING = {
  code: 'api_usage_warning',
  message:
    'partial document: a Portcullis PDP serves compiled entrypoints and bundle data; other rules under this path are not included',
};
