# Generic HTTP problems and validation messages (English).
# Problem messages: problem-<code>-title and problem-<code>-detail.

problem-bad_request-title = Bad request
problem-bad_request-detail = The request could not be understood.
problem-malformed_json-title = Malformed JSON
problem-malformed_json-detail = The request body is not valid JSON (line { $line }, column { $column }).
problem-validation_failed-title = Invalid request
problem-validation_failed-detail = { $count ->
    [one] One rule was broken; see errors for details.
   *[other] { $count } rules were broken; see errors for details.
}
problem-unsupported_media_type-title = Unsupported media type
problem-unsupported_media_type-detail = Send the request body as JSON with the header Content-Type: application/json.
problem-payload_too_large-title = Request body too large
problem-payload_too_large-detail = The request body must not exceed { $limit }.
problem-route_not_found-title = Not found
problem-route_not_found-detail = No resource exists at { $path }.
problem-not_found-title = Not found
problem-not_found-detail = The requested resource does not exist.
problem-method_not_allowed-title = Method not allowed
problem-method_not_allowed-detail = The method { $method } is not allowed on { $path }.
problem-precondition_failed-title = Precondition failed
problem-precondition_failed-detail = The resource changed since you read it; fetch it again and retry with its new ETag.
problem-conflict-title = Conflict
problem-conflict-detail = The request conflicts with the current state of the resource.
problem-unauthorized-title = Authentication required
problem-unauthorized-detail = Sign in and send a valid access token.
problem-forbidden-title = Forbidden
problem-forbidden-detail = You are not allowed to do this.
problem-too_many_requests-title = Too many requests
problem-too_many_requests-detail = Too many attempts; try again in { $seconds ->
    [one] one second
   *[other] { $seconds } seconds
}.
problem-rate_limited-title = Too many requests
problem-rate_limited-detail = Too many requests to { $path } from your address; try again in { $seconds ->
    [one] one second
   *[other] { $seconds } seconds
}.
problem-request_timeout-title = Request timeout
problem-request_timeout-detail = The server did not finish the request in time; please retry.
problem-service_unavailable-title = Service unavailable
problem-service_unavailable-detail = A dependency of this service is unavailable; please retry shortly.
problem-internal_error-title = Internal server error
problem-internal_error-detail = Something went wrong on our side. Quote the request id { $request_id } when reporting it.

# Validation messages: violation-<code>. The field name is reported separately.

violation-required = is required
violation-blank = must not be blank
violation-too_short = must be at least { $min } { $min ->
    [one] character
   *[other] characters
} long
violation-too_long = must be at most { $max } { $max ->
    [one] character
   *[other] characters
} long
violation-too_few_items = must contain at least { $min } { $min ->
    [one] item
   *[other] items
}
violation-too_many_items = must contain at most { $max } { $max ->
    [one] item
   *[other] items
}
violation-out_of_range = must be between { $min } and { $max }
violation-invalid_integer = must be a whole number
violation-invalid_choice = must be one of: { $allowed }
violation-unknown_field = is not a recognised field
violation-unknown_parameter = is not a recognised query parameter
violation-duplicate_parameter = must be given only once
violation-too_many_parameters = must hold at most { $max } parameters
violation-invalid_type = must be { $expected ->
    [string] a string
    [integer] a whole number
    [number] a number
    [boolean] true or false
    [array] an array
    [object] an object
   *[other] a value of another type
}
violation-invalid_value = has an invalid value
problem-cross_site_request-title = Cross-site request refused
problem-cross_site_request-detail = Requests authenticated by the session cookie must come from this site. Send an Authorization: Bearer token instead.
violation-taken = is already taken
violation-invalid_email = must be a valid email address
violation-letters_only = may contain only the letters a to z and A to Z
violation-missing_special_character = must contain at least one of these characters: { $allowed }
violation-invalid_url = must be an absolute URL
violation-unsupported_scheme = must use one of these schemes: { $allowed }
violation-credentials_in_url = must not contain a user name or password
