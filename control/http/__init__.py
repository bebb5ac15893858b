"""The HTTP framework the API's endpoints are declared in: routing, bodies, responses,
cursors, errors, the OpenAPI document. `control.app` assembles the app from it."""
