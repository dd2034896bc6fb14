"""Helpers the pages share (data access, session state, figures, uploads, exports). A package of its own:
Streamlit lists every ``*.py`` directly in ``pages/`` as a page until ``st.navigation`` runs, so a helper
there showed in the sidebar on the first visit after the server started."""
