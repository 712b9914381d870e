"""The code examples of aiosfstream 0.5.0's documentation, verbatim.

Taken from the 0.5.0 sdist (``docs/source/quickstart.rst`` and ``docs/source/advanced.rst``;
``guide.rst`` has none): every ``.. code-block:: python``, with the indentation it has in
the ``.rst`` file.  Each key is the file and line of the block.  They are data:
``test_docs_examples_050.py`` runs them against the emulator.  Do not edit them, since
that test proves they work unchanged.
"""

EXAMPLES: dict[str, str] = {
    "quickstart.rst:26": """\
    client = SalesforceStreamingClient(
        consumer_key="<consumer key>",
        consumer_secret="<consumer secret>",
        username="<username>",
        password="<password>"
    )
""",
    "quickstart.rst:42": """\
    auth = PasswordAuthenticator(
        consumer_key="<consumer key>",
        consumer_secret="<consumer secret>",
        username="<username>",
        password="<password>"
    )
    client = Client(auth)
""",
    "quickstart.rst:59": """\
    auth = RefreshTokenAuthenticator(
        consumer_key="<consumer key>",
        consumer_secret="<consumer secret>",
        refresh_token="<refresh_token>"
    )
    client = Client(auth)
""",
    "quickstart.rst:83": """\
    client = SalesforceStreamingClient(
        consumer_key="<consumer key>",
        consumer_secret="<consumer secret>",
        username="<username>.<sandbox_name>",
        password="<password>",
        sandbox=True
    )
""",
    "quickstart.rst:101": """\
    client = SalesforceStreamingClient(
        consumer_key="<consumer key>",
        consumer_secret="<consumer secret>",
        username="<username>",
        password="<password>"
    )
    await client.open()
    # subscribe and receive messsages...
    await client.close()
""",
    "quickstart.rst:115": """\
    async with SalesforceStreamingClient(
            consumer_key="<consumer key>",
            consumer_secret="<consumer secret>",
            username="<username>",
            password="<password>") as client:
        # subscribe and receive messsages...
""",
    "quickstart.rst:143": """\
    await client.subscribe("/topic/foo")
""",
    "quickstart.rst:150": """\
    await client.unsubscribe("/topic/foo")
""",
    "quickstart.rst:164": """\
    message = await client.receive()
""",
    "quickstart.rst:177": """\
    async for message in client:
        # process message
""",
    "quickstart.rst:206": """\
        with shelve.open("replay.db") as replay:

            async with SalesforceStreamingClient(
                consumer_key="<consumer key>",
                consumer_secret="<consumer secret>",
                username="<username>",
                password="<password>",
                replay=replay) as client:

                await client.subscribe("/topic/foo")

                async for message in client:
                    # process message
""",
    "advanced.rst:33": """\
    async with SalesforceStreamingClient(
                    consumer_key="<consumer key>",
                    consumer_secret="<consumer secret>",
                    username="<username>",
                    password="<password>",
                    replay=ReplayOption.ALL_EVENTS) as client:

         await client.subscribe("/topic/foo")

                async for message in client:
                    # process message
""",
    "advanced.rst:67": """\
        with shelve.open("replay.db") as replay:

            async with SalesforceStreamingClient(
                consumer_key="<consumer key>",
                consumer_secret="<consumer secret>",
                username="<username>",
                password="<password>",
                replay=replay) as client:

                await client.subscribe("/topic/foo")

                async for message in client:
                    # process message
""",
    "advanced.rst:90": """\
        with shelve.open("replay.db") as replay:

            default_mapping = DefaultMappingStorage(
                replay,
                ReplayOption.ALL_EVENTS
            )

            async with SalesforceStreamingClient(
                consumer_key="<consumer key>",
                consumer_secret="<consumer secret>",
                username="<username>",
                password="<password>",
                replay=default_mapping) as client:

                await client.subscribe("/topic/foo")

                async for message in client:
                    # process message
""",
    "advanced.rst:116": """\
        class MyReplayMarkerStorage(ReplayMarkerStorage):
            async def set_replay_marker(self, subscription, replay_marker):
                # store *replay_marker* for the given *subscription*

            async def get_replay_marker(self, subscription):
                # retrieve the replay marker for the given *subscription*

        replay = MyReplayMarkerStorage()

        async with SalesforceStreamingClient(
            consumer_key="<consumer key>",
            consumer_secret="<consumer secret>",
            username="<username>",
            password="<password>",
            replay=replay) as client:

            await client.subscribe("/topic/foo")

            async for message in client:
                # process message
""",
    "advanced.rst:151": """\
    try:
        await client.subscribe("/topic/foo")
    except ServerError as error:
        print(error.error_message)
""",
    "advanced.rst:167": """\
    try:
        await client.subscribe("/topic/foo")
    except ServerError as error:
        del replay["/topic/foo"]
        await client.subscribe(/topic/foo")
""",
    "advanced.rst:180": """\
        with shelve.open("replay.db") as replay:

            async with SalesforceStreamingClient(
                consumer_key="<consumer key>",
                consumer_secret="<consumer secret>",
                username="<username>",
                password="<password>",
                replay=replay,
                replay_fallback=ReplayOption.ALL_EVENTS) as client:

                await client.subscribe("/topic/foo")

                async for message in client:
                    # process message
""",
    "advanced.rst:220": """\
    with shelve.open("replay.db") as replay:

            async with SalesforceStreamingClient(
                consumer_key="<consumer key>",
                consumer_secret="<consumer secret>",
                username="<username>",
                password="<password>",
                replay=replay,
                replay_storage_policy=ReplayMarkerStoragePolicy.MANUAL) as client:

                await client.subscribe("/topic/foo")

                async for message in client:
                    # message processing code raising errors...
                    await client.replay_storage.extract_replay_id(message)
""",
    "advanced.rst:243": """\
    with shelve.open("replay.db") as replay:

            async with SalesforceStreamingClient(
                consumer_key="<consumer key>",
                consumer_secret="<consumer secret>",
                username="<username>",
                password="<password>",
                replay=replay,
                replay_storage_policy=ReplayMarkerStoragePolicy.MANUAL) as client:

                await client.subscribe("/topic/foo")

                async for message in client:
                    async with client.replay_storage(message):
                        # message processing code raising errors...
""",
    "advanced.rst:277": """\
    client = SalesforceStreamingClient(
        consumer_key="<consumer key>",
        consumer_secret="<consumer secret>",
        username="<username>",
        password="<password>",
        connection_timeout=60
    )
    await client.open()

    try:
        message = await client.receive()
    except TransportTimeoutError:
        print("Connection is lost with the server. "
              "Couldn't reconnect in 60 seconds.")
""",
    "advanced.rst:314": """\
    client = SalesforceStreamingClient(
        consumer_key="<consumer key>",
        consumer_secret="<consumer secret>",
        username="<username>",
        password="<password>",
        max_pending_count=42
    )
""",
    "advanced.rst:336": """\
    import ujson

    client = SalesforceStreamingClient(
        consumer_key="<consumer key>",
        consumer_secret="<consumer secret>",
        username="<username>",
        password="<password>",
        json_dumps=ujson.dumps,
        json_loads=ujson.loads
    )
""",
}
