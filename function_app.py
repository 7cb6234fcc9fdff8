"""The Azure Functions app: registrations only. Each body is one line into ``handlers``.

Every trigger, route and schedule of akv-rotator is visible in this file.
"""

import azure.functions as func

from handlers import eventgrid, http
from handlers.services import get_services

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.function_name(name="keyvault_events")
@app.event_grid_trigger(arg_name="event")
def keyvault_events(event: func.EventGridEvent) -> None:
    """Key Vault SecretNearExpiry / SecretExpired / SecretNewVersionCreated, via Event Grid."""
    eventgrid.handle_event(event, get_services)


@app.function_name(name="rotate_secret")
@app.route(route="secrets/{name}/rotate", methods=[func.HttpMethod.POST])
def rotate_secret(req: func.HttpRequest) -> func.HttpResponse:
    """Rotate a secret now: ``POST /api/secrets/{name}/rotate[?vault=NAME]``."""
    return http.rotate_secret(req, get_services)
