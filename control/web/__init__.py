"""The web app: pages served beside the JSON API, and the browser code they load."""
