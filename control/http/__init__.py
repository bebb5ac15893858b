"""The HTTP framework the API's endpoints are declared in: routing, bodies, responses,
cursors, errors, the OpenAPI document, the app itself."""
