import streamlit as st
st.title("hessian")
