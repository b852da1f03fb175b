"""Loupe's dashboard: navigation only. Each page lives in pages/ and calls core/."""

import streamlit as st


def run() -> None:
    st.set_page_config(page_title="Loupe", page_icon="🔎", layout="wide")
    navigation = st.navigation(
        {
            "Project": [
                st.Page("pages/projects.py", title="Projects", icon=":material/folder_open:", default=True),
                st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:"),
                st.Page("pages/settings.py", title="Settings", icon=":material/settings:"),
            ],
            "Explore": [
                st.Page("pages/data.py", title="Data", icon=":material/table_rows:"),
                st.Page("pages/dashboard.py", title="Dashboard", icon=":material/monitoring:"),
                st.Page("pages/search.py", title="Search", icon=":material/travel_explore:"),
            ],
            "Label": [
                st.Page("pages/labeling.py", title="Labeling", icon=":material/label:"),
                st.Page("pages/review.py", title="Review", icon=":material/fact_check:"),
            ],
            "Automate": [st.Page("pages/heuristics.py", title="Heuristics", icon=":material/rule:")],
        }
    )
    navigation.run()


if __name__ == "__main__":
    run()
