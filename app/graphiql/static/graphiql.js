// GraphiQL with the explorer plugin, as Strawberry's page sets it up (MIT),
// moved out of an inline script so the page's CSP can forbid inline scripts.
// URL parameters `q`, `variables` and `headers` prefill the editors, e.g.
// /graphql?q={program{name}}&headers={"Authorization":"Bearer <api key>"}
"use strict";

(function () {
  const parameters = Object.fromEntries(new URLSearchParams(window.location.search));

  function updateURL(data) {
    Object.assign(parameters, data);
    const search = new URLSearchParams(
      Object.entries(parameters).filter(function (entry) {
        return Boolean(entry[1]);
      }),
    );
    history.replaceState(null, "", "?" + search.toString());
  }

  const fetchURL = window.location.href.split("?")[0];
  const subscriptionURL = new URL(fetchURL);
  subscriptionURL.protocol = subscriptionURL.protocol === "https:" ? "wss:" : "ws:";
  subscriptionURL.hash = "";

  const fetcher = GraphiQL.createFetcher({
    url: fetchURL,
    subscriptionUrl: subscriptionURL.toString(),
  });

  const EXAMPLE_QUERY =
    "# Questline's GraphQL API. Put your API key or player token in the Headers tab:\n" +
    '#   {"Authorization": "Bearer <api key or player token>"}\n' +
    "# then run (Ctrl-Enter):\n" +
    "{\n  program {\n    name\n    version\n  }\n}\n";

  function GraphiQLWithExplorer() {
    const [query, setQuery] = React.useState(parameters.q || EXAMPLE_QUERY);
    const [variables, setVariables] = React.useState(parameters.variables);
    const [headers, setHeaders] = React.useState(parameters.headers);
    const explorerPlugin = GraphiQLPluginExplorer.explorerPlugin();
    return React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: true,
      plugins: [explorerPlugin],
      query: query,
      variables: variables,
      headers: headers,
      onEditQuery: function (value) {
        setQuery(value);
        updateURL({ q: value });
      },
      onEditVariables: function (value) {
        setVariables(value);
        updateURL({ variables: value });
      },
      onEditHeaders: setHeaders,
      inputValueDeprecation: true,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
    });
  }

  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQLWithExplorer),
  );
})();
